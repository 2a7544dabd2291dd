"""Survey: asks every customer after resolution, and acts on every unhappy answer."""
