"""The loan officer's web form: ``templates/form.html`` filled in with the contract's fields.

The page holds one applicant: fields named in plain words with their units (:mod:`utils.plain_words`), category
fields as drop-down lists, numbers limited to the contract's ranges, the example applicant of the docs as
defaults. It calls the WML v4 scoring endpoint and shows the decision, its probability and the transaction id, then
the top reasons and what would change the decision (the transaction's explanation); an error from the server
beside the field it names; a clear message when the service is down or answers something other than JSON.
"""

from __future__ import annotations

import html
import json
from functools import cache
from importlib import resources
from string import Template

from utils.data import CATEGORIES, CLASS_ORDER, FEATURES, NUMERIC_RANGES
from utils.plain_words import label, shown_value
from utils.serving.schemas import EXAMPLE_ROW


@cache
def _template() -> Template:
    return Template((resources.files(__package__) / "templates" / "form.html").read_text(encoding="utf-8"))


def _form_field(name: str) -> str:
    default = EXAMPLE_ROW[FEATURES.index(name)]
    if name in CATEGORIES:
        options = "".join(
            f'<option value="{html.escape(v)}"{" selected" if v == default else ""}>'
            f"{html.escape(shown_value(name, v))}</option>"
            for v in CATEGORIES[name]
        )
        control = f'<select id="{name}" name="{name}">{options}</select>'
    else:
        low, high = NUMERIC_RANGES[name]
        limits = f'min="{low}" max="{high}" step="1" value="{default}" required'
        control = f'<input id="{name}" name="{name}" type="number" {limits}>'
    error = f'<span class="field-error" id="error-{name}" role="alert" hidden></span>'
    return f'<label for="{name}">{html.escape(label(name))}</label><div class="control">{control}{error}</div>'


@cache
def render_form(*, api_key_required: bool = False) -> str:
    """The loan-officer page: one applicant, category fields as drop-downs, the decision shown on submit."""
    return _template().substitute(
        fields="\n".join(_form_field(name) for name in FEATURES),
        features=json.dumps(list(FEATURES)),
        numeric=json.dumps(list(NUMERIC_RANGES)),
        classes=json.dumps(list(CLASS_ORDER)),
        key_hidden="" if api_key_required else " hidden",
    )
