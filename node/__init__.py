"""The node daemon: the composition root that wires one Shoal node together.

`node.config` is the typed configuration the CLI builds, `node.state` the
node's files and addresses, `node.credentials` its keys and certificates,
`node.bootstrap` init/join/force-new-cluster/leave and starting the daemon,
`node.daemon` the running node (store, manager components, servers, agent),
`node.renewal` certificate renewal and `node.lockedmode` a locked manager.
Nothing here reads environment variables: the CLI does, and passes a config.
"""
