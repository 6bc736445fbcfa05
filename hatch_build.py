"""Build hook: compile the chain check's native part (app/audit/_native.c).

It links OpenSSL's libcrypto (the library Python's hashlib uses; Debian: libssl-dev to
build). The extension is optional. Where no C compiler or headers are at hand, the
package installs without it and ``audit verify`` runs its checks in SQL instead
(app.audit.chain); ``SAMVERKAN_NATIVE=require`` makes a failed build an error (CI), and
``SAMVERKAN_NATIVE=skip`` leaves it out.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SOURCE = Path("app/audit/_native.c")


class NativeBuildHook(BuildHookInterface):  # type: ignore[misc]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        wanted = os.environ.get("SAMVERKAN_NATIVE", "build")
        if wanted == "skip":
            return
        root = Path(self.root)
        target = root / SOURCE.with_name("_native" + sysconfig.get_config_var("EXT_SUFFIX"))
        compiler = shlex.split(sysconfig.get_config_var("CC") or "cc")
        command = [
            *compiler,
            "-shared",
            "-fPIC",
            "-O2",
            "-Wall",
            "-Werror",
            f"-I{sysconfig.get_paths()['include']}",
            str(root / SOURCE),
            "-o",
            str(target),
            "-lcrypto",
        ]
        try:
            # the compiler Python was built with, over this repository's own source
            subprocess.run(command, check=True, capture_output=True, text=True)  # noqa: S603
        except (OSError, subprocess.CalledProcessError) as error:
            output = getattr(error, "stderr", "") or str(error)
            if wanted == "require":
                raise RuntimeError(f"the native chain check did not build:\n{output}") from error
            sys.stderr.write(
                f"samverkan: the native chain check did not build; verify runs in SQL\n{output}\n"
            )
            return
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        build_data["artifacts"].append(str(target.relative_to(root)))
