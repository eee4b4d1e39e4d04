"""Walking the settings models: dotted keys, the field at a key, which fields hold secrets."""

from __future__ import annotations

import types
from collections.abc import Iterator, Sequence
from typing import Annotated, Union, get_args, get_origin

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo


def leaf_keys(model: BaseModel, prefix: str = "") -> list[str]:
    """Dotted keys of every leaf value (lists count as one leaf)."""
    keys: list[str] = []
    for name in type(model).model_fields:
        value = getattr(model, name)
        dotted = f"{prefix}{name}"
        if isinstance(value, BaseModel):
            keys.extend(leaf_keys(value, dotted + "."))
        else:
            keys.append(dotted)
    return keys


def model_class(annotation: object, *, through_lists: bool = False) -> type[BaseModel] | None:
    """The model an annotation names (or, ``through_lists``, the model of a list's items)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) is Annotated:
        return model_class(get_args(annotation)[0], through_lists=through_lists)
    if through_lists and get_origin(annotation) is list:
        return model_class(get_args(annotation)[0])
    return None


def field_at(root: type[BaseModel], parts: Sequence[str]) -> FieldInfo | None:
    """The field at a dotted path below ``root`` (through lists of models), or None if there is none."""
    model: type[BaseModel] | None = root
    info: FieldInfo | None = None
    for part in parts:
        if model is None:
            return None
        info = model.model_fields.get(part)
        if info is None:
            return None
        model = model_class(info.annotation, through_lists=True)
    return info


def model_at(root: type[BaseModel], parts: Sequence[str]) -> type[BaseModel] | None:
    """The model class whose fields live at a dotted path (``root`` itself for no parts)."""
    if not parts:
        return root
    info = field_at(root, parts)
    return None if info is None else model_class(info.annotation, through_lists=True)


def _type_args(annotation: object) -> tuple[object, ...]:
    origin = get_origin(annotation)
    if origin is Annotated:
        return _type_args(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return get_args(annotation)
    return (annotation,)


def is_secret(info: FieldInfo | None) -> bool:
    return info is not None and any(arg is SecretStr for arg in _type_args(info.annotation))


def is_list(info: FieldInfo | None) -> bool:
    return info is not None and any(get_origin(arg) is list or arg is list for arg in _type_args(info.annotation))


def secret_fields(model: BaseModel, prefix: str = "") -> Iterator[tuple[str, SecretStr | None]]:
    """``(dotted key, value)`` of every secret field, set or not."""
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            yield from secret_fields(value, f"{prefix}{name}.")
        elif is_secret(info):
            yield f"{prefix}{name}", value


def secret_values(model: BaseModel) -> Iterator[str]:
    """The value of every set secret field, in nested models and lists of models too."""
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, SecretStr):
            yield value.get_secret_value()
        elif isinstance(value, BaseModel):
            yield from secret_values(value)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, BaseModel):
                    yield from secret_values(item)


def plain_values(model: BaseModel) -> dict[str, object]:
    """The field values as plain dicts (nested models too), to validate again.

    Not ``model_dump``: it masks the database password and would not round-trip.
    """
    out: dict[str, object] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            value = plain_values(value)
        elif isinstance(value, list):
            value = [plain_values(v) if isinstance(v, BaseModel) else v for v in value]
        out[name] = value
    return out
