"""`rmteach theory`: `sim` (exact simulations, numpy only), `experiments` (the three theorems), `report`."""
