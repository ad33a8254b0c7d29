from vmkit.cli import app

if __name__ == "__main__":  # a Dask LocalCluster's spawned workers import this module too
    app(prog_name="vmkit")
