"""overlay_net package."""
