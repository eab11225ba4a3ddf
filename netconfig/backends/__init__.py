"""Backends behind observe.LinkBackend / FilterBackend: netlink (pyroute2), iptables-nft, and a fake."""
