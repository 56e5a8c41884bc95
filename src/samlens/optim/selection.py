"""Which parameters a SAM step perturbs: all, an explicit subset, or the parameters of the modules
a predicate picks (LSAM: the head; SAM-ON: the normalisation layers). Every other parameter still
takes the base optimizer's step."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from torch import Tensor, nn

from samlens.errors import ConfigError

ParamSelector = Iterable[Tensor] | Callable[[str, nn.Module], bool]


def select_parameters(
    selector: ParamSelector | None, model: nn.Module | None, all_params: list[Tensor]
) -> set[int]:
    """The ids of the chosen parameters among ``all_params``; an empty or foreign choice is refused."""
    if selector is None:
        return {id(p) for p in all_params}
    if callable(selector) and not isinstance(selector, (nn.Module, Tensor)):
        if model is None:
            raise ConfigError("a module predicate for params_to_perturb needs model=")
        chosen = {
            id(p)
            for name, module in model.named_modules()
            if selector(name, module)
            for p in module.parameters(recurse=False)
        }
    else:
        chosen = {id(p) for p in selector}
    known = {id(p) for p in all_params}
    if not chosen:
        raise ConfigError("params_to_perturb selects no parameters")
    if not chosen <= known:
        raise ConfigError("params_to_perturb contains parameters that the base optimizer does not hold")
    return chosen
