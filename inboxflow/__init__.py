"""inboxflow: an email-centred business-process engine on Prefect 3."""
