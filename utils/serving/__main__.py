"""``python -m utils.serving``: serve the deployed models (see :func:`utils.serving.server.main`)."""

from utils.serving.server import main

if __name__ == "__main__":
    main()
