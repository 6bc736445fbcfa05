"""Sign-in through each agency's own OpenID Connect provider (issue 17)."""
