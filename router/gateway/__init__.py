"""The homeserver gateway: federation out through the overlay, and in from it."""
