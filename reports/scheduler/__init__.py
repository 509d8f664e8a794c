"""The scheduler: when jobs fire, and the `serve` loop that runs them."""
