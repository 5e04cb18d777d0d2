"""Stage `choose_ship`: what to ship on each device within an accuracy budget (choose.py)."""
