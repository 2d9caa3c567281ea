"""What the Gradio Space does, as plain library functions (the UI in ``demo/`` is thin).

``sessions``: per-browser-session folders, uploads and query checks; ``search``: the
embedded set and one method's answer, from the process's :class:`~bench.workspace.Workspace`;
``media``: thumbnails, thumbnail sheets and clips; ``display``: evidence lines, IoU and
timeline plots; ``leaderboard``: the leaderboard and benchmark browser, from the runner's
result files.
"""
