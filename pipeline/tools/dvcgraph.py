"""The stage graph as DVC itself sees it, so orchestration never keeps a second, copied stage list.

``load_graph`` asks DVC's own index (``dvc.repo.Repo(root).index``): foreach / matrix stages come back
expanded (``classify@cgan-0``), names are what ``dvc repro`` accepts, and an edge exists exactly where DVC
would rebuild one stage because of another. Orders are topological with ties broken by the order the
stages are defined in, so the same ``dvc.yaml`` always gives the same order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import networkx as nx


@dataclass(frozen=True)
class Output:
    path: Path  # absolute
    cached: bool  # False for ``cache: false`` outs (metrics kept in git): DVC cannot restore them
    persist: bool  # DVC keeps persisted outs in place while the stage runs


@dataclass(frozen=True)
class StageInfo:
    name: str  # what ``dvc repro`` takes: "ingest", "classify@cgan-0", "sub/dvc.yaml:train"
    group: str  # the foreach / matrix group ("classify"), or the name itself
    deps: tuple[Path, ...]  # absolute file and folder dependencies (params files excluded)
    outs: tuple[Output, ...]
    upstream: tuple[str, ...]  # stages this one directly depends on
    frozen: bool = False


@dataclass
class StageGraph:
    root: Path
    stages: dict[str, StageInfo] = field(default_factory=dict)  # topological order
    _graph: nx.DiGraph = field(default_factory=nx.DiGraph, repr=False)  # edge: dependency -> dependent

    def __contains__(self, name: str) -> bool:
        return name in self.stages

    def __iter__(self):
        return iter(self.stages)

    def __len__(self) -> int:
        return len(self.stages)

    @property
    def order(self) -> list[str]:
        return list(self.stages)

    def select(self, target: str) -> list[str]:
        """Stage names that ``target`` means: a stage, or a foreach / matrix group by its name."""
        if target in self.stages:
            return [target]
        members = [name for name, info in self.stages.items() if info.group == target]
        if not members:
            known = sorted({info.group for info in self.stages.values()})
            raise KeyError(f"unknown stage '{target}' (stages: {', '.join(known)})")
        return members

    def _sorted(self, names: Iterable[str]) -> list[str]:
        keep = set(names)
        return [name for name in self.stages if name in keep]

    def upstream_of(self, targets: Iterable[str]) -> list[str]:
        """The targets and everything they depend on, dependencies first."""
        names = {n for t in targets for n in self.select(t)}
        return self._sorted(names.union(*(nx.ancestors(self._graph, n) for n in names)))

    def downstream_of(self, targets: Iterable[str]) -> list[str]:
        """The targets and everything that depends on them, in run order."""
        names = {n for t in targets for n in self.select(t)}
        return self._sorted(names.union(*(nx.descendants(self._graph, n) for n in names)))

    def depends_on_any(self, stage: str, paths: Iterable[str | Path]) -> bool:
        """True when one of the stage's declared dependencies is, or contains, one of ``paths``."""
        deps = self.stages[stage].deps
        return any(_covers(dep, Path(p)) for p in paths for dep in deps)


def _covers(parent: Path, path: Path) -> bool:
    return path == parent or parent in path.parents


def _address(stage) -> str:
    """The stage as ``dvc repro`` run in the project root names it (``stage.addressing`` is relative to the
    current directory of this process instead)."""
    dvcfile = getattr(stage, "path_in_repo", None)
    name = getattr(stage, "name", None)
    if not name or dvcfile is None:
        return stage.addressing
    return name if dvcfile == "dvc.yaml" else f"{dvcfile}:{name}"


def load_graph(root: str | Path = ".") -> StageGraph:
    """Read ``dvc.yaml`` (all of them in the repository) through DVC; raises DVC's error when invalid."""
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo
    from dvc.stage import PipelineStage

    def local(o) -> bool:  # files and folders on this machine; not params, not s3:// or imports
        return o.fs.protocol == "local" and not isinstance(o, ParamsDependency) and not getattr(o, "def_repo", None)

    root = Path(root).resolve()
    with Repo(str(root)) as repo:
        index = repo.index
        pipeline = [s for s in index.stages if isinstance(s, PipelineStage)]
        position = {_address(s): i for i, s in enumerate(pipeline)}
        graph = nx.DiGraph()
        graph.add_nodes_from(position)
        for dependent, dependency in index.graph.edges:  # DVC's edges point at the dependency
            if _address(dependent) in position and _address(dependency) in position:
                graph.add_edge(_address(dependency), _address(dependent))
        infos = {}
        for stage in pipeline:
            name = _address(stage)
            infos[name] = StageInfo(
                name=name,
                group=name.split("@", 1)[0],
                deps=tuple(Path(d.fs_path).resolve() for d in stage.deps if local(d)),
                outs=tuple(
                    Output(Path(o.fs_path).resolve(), bool(o.use_cache), bool(o.persist))
                    for o in stage.outs
                    if local(o)
                ),
                upstream=tuple(sorted(graph.predecessors(name), key=position.__getitem__)),
                frozen=bool(stage.frozen),
            )
    order = nx.lexicographical_topological_sort(graph, key=position.__getitem__)
    return StageGraph(root=root, stages={name: infos[name] for name in order}, _graph=graph)
