"""The report: tables.py, figures.py and gallery.py (what report_entries.py lists), and the checked
findings: findings.py runs every claim, claims.py is their framework, claims_<family>.py
hold the claims by what they are about (size, accuracy, device, populations)."""
