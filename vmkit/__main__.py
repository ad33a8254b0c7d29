from vmkit.cli import app

app(prog_name="vmkit")
