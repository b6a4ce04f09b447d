"""The settings side of DGPO and its variants: names, checks, the flat record, and settings given to ``load``.

:class:`SettingsMixin` is a base of :class:`~agents.dgpo.dgpo.DGPO`. A class lists the attributes holding
its settings dataclasses in ``settings_sources`` (``("config",)`` for DGPO; the variants add ``"elite"``,
``"surrogate"``, ...) and their classes in ``settings_classes``; the mixin derives from them the setting
names the constructor accepts, the message for an unknown one, and the flat ``{name: value}`` record.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from agents.dgpo.advantages import RewardNormalizer
from agents.dgpo.config import DGPOConfig, Settings, adopt_loaded


class SettingsMixin:
    """Setting names and checks from ``settings_sources`` / ``settings_classes`` (see the module docstring).

    Attributes:
        settings_sources: Attributes holding settings dataclasses, DGPO's ``"config"`` first.
        settings_classes: The dataclass of each source.
        config: DGPO's settings.
        normalizer: The reward normaliser (its smoothing and clip follow :attr:`config`).
    """

    settings_sources: ClassVar[tuple[str, ...]]
    settings_classes: ClassVar[dict[str, type[Settings]]]
    other_keywords: ClassVar[frozenset[str]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Derive ``settings_sources`` and the sources' constructor keywords from a class's ``settings_classes``.

        A variant declares only ``settings_classes`` (its parent's plus its own, in order); its
        ``settings_sources`` are their names, and each name (``elite=``, ``surrogate=``, ...) joins the
        parent's ``other_keywords``, the constructor arguments that are not settings.
        """
        super().__init_subclass__(**kwargs)
        if "settings_classes" in vars(cls):
            cls.settings_sources = tuple(cls.settings_classes)
            cls.other_keywords = frozenset(getattr(cls, "other_keywords", frozenset())) | set(cls.settings_classes)

    config: DGPOConfig
    normalizer: RewardNormalizer

    @classmethod
    def setting_names(cls) -> tuple[str, ...]:
        """The setting names the constructor and :meth:`for_env_id` accept as keywords (of every settings source)."""
        return tuple(name for source in cls.settings_sources for name in cls.settings_classes[source].field_names())

    @classmethod
    def _check_setting_names(cls, names: Iterable[str]) -> None:
        """Raise :class:`TypeError` naming the known settings if any of ``names`` is not one."""
        unknown = [name for name in names if name not in cls.setting_names()]
        if unknown:
            takers = [sub.__name__ for sub in _subclasses(cls) if set(unknown) <= set(sub.setting_names())]
            raise TypeError(
                f"{cls.__name__} got unknown setting(s) {', '.join(map(repr, unknown))}; "
                f"known settings: {', '.join(cls.setting_names())}"
                + (f" ({_listed(takers)} take{'s' if len(takers) == 1 else ''} them)" if takers else "")
            )

    def settings_dict(self) -> dict[str, Any]:
        """Every setting in use, ``{name: value}`` (a flat, JSON-friendly record of the run's settings).

        The sources in the order of :attr:`settings_sources`: DGPO's settings first.
        """
        return {
            name: value for source in self.settings_sources for name, value in getattr(self, source).to_dict().items()
        }

    def _adopt_loaded_settings(self) -> None:
        """Fold settings that SB3's ``load`` put into ``__dict__`` into :attr:`config` and the other settings sources.

        ``DGPO.load(path, batch_size=...)`` passes settings that way, and agents saved before the settings
        dataclasses stored each setting as an attribute. SB3's own ``learning_rate`` attribute (what
        ``load(path, learning_rate=...)`` sets) wins over the config's.
        """
        state = vars(self)
        foreign = [
            name for name, value in state.items() if isinstance(value, Settings) and name not in self.settings_sources
        ]
        if foreign:
            raise ValueError(
                f"the saved agent has settings {', '.join(foreign)} that {type(self).__name__} does not use; "
                "load it with the class that saved it"
            )
        found = {
            name: state.pop(name) for name in DGPOConfig.field_names() if name != "learning_rate" and name in state
        }
        if "learning_rate" in state and state["learning_rate"] != self.config.learning_rate:
            found["learning_rate"] = state["learning_rate"]
        if found:
            self.config = self.config.replace(**found)
            self.normalizer.smoothing, self.normalizer.clip = self.config.reward_smoothing, self.config.advantage_clip
        for source in self.settings_sources[1:]:  # a subclass's own settings (elite, surrogate, ...)
            setattr(self, source, adopt_loaded(state, getattr(self, source)))


def _listed(names: list[str]) -> str:
    """``"A"``, ``"A and B"``, ``"A, B and C"``."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _subclasses(cls: type[SettingsMixin]) -> list[type[SettingsMixin]]:
    """Every subclass of ``cls`` defined so far, depth first."""
    return [sub for direct in cls.__subclasses__() for sub in (direct, *_subclasses(direct))]


__all__ = ["SettingsMixin"]
