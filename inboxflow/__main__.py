from inboxflow.cli import app

app(prog_name="inboxflow")
