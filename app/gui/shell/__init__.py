"""The parts of the main window around the screens (app/gui/main_window.py holds them together):
the sidebar and the lazily built screens (sidebar.py), the menu bar and its shortcuts
(menus.py), the status bar (status.py), the window's size, place and what it reopens
(geometry.py), and the notices across the top (main_window + app/gui/overlay.py)."""
