"""`python -m stereo_studio`: same as the `stereo-studio` command."""

from stereo_studio.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
