from batchctl.cli import app

if __name__ == "__main__":  # a spawned child process imports this module again
    app(prog_name="batchctl")
