"""What the HTTP servers share: bounded request reading, error answers, a connection table."""
