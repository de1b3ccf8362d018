"""Route modules, one per page or resource; each exposes `router` and optionally `NAV`."""
