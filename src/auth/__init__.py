"""Who may do what: access rules, authentication of each request, secrets kept out of logs."""
