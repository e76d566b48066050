"""The daemon: ``pinewood run``, the node around the routing core, its peers and admin API."""
