"""The wheel's build hook: mypyc compiles the server's hot modules where it can.

`pip install .` installs the compiled server (the modules listed in pyproject.toml; 13-21% less
server CPU per job, docs/performance.md).  An editable install (`pip install -e .`, as
`make deps` does) stays pure Python, so that edits take effect at once.  Where compiling fails
(no C compiler or Python headers) the wheel is pure Python and the build says why;
HATCH_BUILD_NO_HOOKS=true asks for pure Python outright.  Both builds pass the same tests.
"""

from __future__ import annotations

from typing import Any

from hatch_mypyc import plugin


class CompiledWhereItCan(plugin.MypycBuildHook):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        self.compiled = False
        if version != "standard":
            return
        try:
            super().initialize(version, build_data)
        except Exception as error:
            # hatch-mypyc's message ends with the compiler's output; its last line says why.
            why = str(error).strip().splitlines()[-1]
            self.app.display_warning(f"geartrain: building without compiled modules ({why})")
            self.clean([version])
            return
        self.compiled = True

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        # The compiled modules were built beside their sources; the wheel holds them now,
        # and left there they would shadow the sources of an editable install.
        if self.compiled:
            self.clean([version])


def get_build_hook() -> type[CompiledWhereItCan]:
    return CompiledWhereItCan
