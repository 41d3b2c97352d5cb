"""overlay_net: a node's overlay data plane (VXLAN sandboxes, DNS, VIPs, routing mesh,
encrypted overlays). Entry points: `dataplane.DataPlane.apply()`, `dns.DnsServer.update()`,
`adapter.desired_state()`; see design/overlay-dataplane.md."""
