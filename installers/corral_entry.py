"""Entry point of the frozen app (PyInstaller): the same `corral` command as the installed package.

`corral --corral-runner` (how the engine starts llama.cpp's child process in a frozen app) is
dispatched inside app.cli.main before any argument parsing.
"""

from app.cli import main

raise SystemExit(main())
