"""Bytes in, plain data out: MIME, archives, spreadsheets and Word documents.

Nothing here knows a campaign, a database or a network. A file that cannot be
read raises FileProblem with a stable code; callers turn it into a finding.
"""
