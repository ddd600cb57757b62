# -*- coding: utf-8 -*-
"""Action plugin classifier_state: runs ../library/classifier_state.py on the host as one command.

The file is sent as the program of the host's Python (`python3 -c <source>`), the request as
JSON on stdin, and the answer comes back as JSON on stdout: one round trip, nothing written on
the host, no AnsiballZ (see the library file for why). The arguments are checked here, on the
controller, before anything runs.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

SOURCE = Path(__file__).resolve().parent.parent / "library" / "classifier_state.py"
# Read once, when Ansible loads the plugin, not for every host and task.
PROGRAM = SOURCE.read_text(encoding="utf-8")
ARGUMENT_SPEC = {
    "groups": {"type": "dict", "default": {}},
    "platform": {"type": "bool", "default": False},
}
# Used when the inventory names no interpreter and no module run has discovered one yet.
DEFAULT_PYTHON = "/usr/bin/python3"


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True  # it only reads

    def _python(self, task_vars):
        """The interpreter Ansible's modules would use on this host."""
        configured = task_vars.get("ansible_python_interpreter")
        if configured:
            configured = self._templar.template(configured)
            if configured and not str(configured).startswith("auto"):
                return str(configured)
        facts = task_vars.get("ansible_facts") or {}
        return facts.get("discovered_interpreter_python") or DEFAULT_PYTHON

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp  # no temporary files
        _, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        request = json.dumps({"groups": args["groups"], "platform": args["platform"]}).encode()
        python = self._python(task_vars)
        command = f"{shlex.quote(python)} -c {shlex.quote(PROGRAM)}"
        ran = self._low_level_execute_command(command, in_data=request, sudoable=True)
        if ran["rc"] != 0:
            raise AnsibleActionFail(
                f"classifier_state: {python} on the host failed (rc {ran['rc']}): "
                f"{(ran['stderr'].strip() or ran['stdout'].strip())[-2000:]}")
        try:
            answer = json.loads(ran["stdout"])
        except ValueError:
            raise AnsibleActionFail(
                f"classifier_state: {python} on the host answered no JSON: {ran['stdout'][-2000:]!r} "
                f"{ran['stderr'][-2000:]}") from None
        result.update(answer)
        return result
