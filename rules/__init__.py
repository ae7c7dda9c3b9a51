"""What a campaign expects and the code that applies it to parsed files.

Depends on parsers only; knows nothing of IMAP, SMTP or SQL.
"""
