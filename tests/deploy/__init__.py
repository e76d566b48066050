"""Deployment as a system administrator does it: a non-editable install into a
fresh virtual environment, the systemd unit, the files the node leaves for the
homeserver."""
