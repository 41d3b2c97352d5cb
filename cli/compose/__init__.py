"""The client side of stacks: reading Compose files (format 3.x) as Docker Swarm does.

The client parses and interpolates the files (they are the client's files and
its environment) and hands on one normalized, validated `model.Stack`:

- `yamlload`: the YAML dialect (safe, anchors and merge keys, YAML 1.2 scalars);
- `interpolate`: `$VAR`, `${VAR:-default}` ... substitution, with warnings;
- `values`, `service`, `deploy`, `toplevel`, `paths`: validation of each key,
  every failure a `ComposeError` with the file, the key path and what was expected
  (the load collects the independent ones and raises them together, `errors`);
- `merge`: several `-c` files merged in order, Docker's rules;
- `loader`: the whole load (`load(sources, env, workdir, reader)`);
- `render`: the merged file as `stack config` prints it.

Nothing here talks to a node; the manager side (one-transaction deploy) takes
the `Stack` through a converter to protobuf specs.
"""
