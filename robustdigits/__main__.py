from .entry import run

if __name__ == "__main__":
    run(prog_name="python -m robustdigits")
