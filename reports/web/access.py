"""Who sees what in the archive.

A reader is known by an address: an email address, or a Slack channel or handle. They see
- everyone's report of each job whose `deliver:` sends to that address (an analyst, an executive);
- the scoped reports made for them (a CS owner's own, each project they own), wherever a run
  recorded that recipient's address beside its files;
- everything, if the address is one of `web.operators`.
A link in a message sent to several fixed addresses at once stands for them as a group
(`job:NAME`: that job's reports), and a scoped report whose recipient has no address for a
link's folder (`folder:JOB/FOLDER`). Anything a reader may not see is answered as if it did
not exist.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from notifiers import NOTIFIERS
from reports.config.models import HeraldConfig
from reports.store.archive import EVERYONE


def fixed_routes(config: HeraldConfig, job: str) -> set[str]:
    """The fixed addresses (lower case) a job's `deliver:` sends everyone's report to."""
    found = set()
    report = config.reports.get(job)
    for entry in report.deliver if report else []:
        (channel,) = type(entry).model_fields
        for route in NOTIFIERS[channel].routes(getattr(entry, channel)):
            if not route.owner and route.label != "webhook":
                found.add(route.label.lower())
    return found


@dataclass(frozen=True)
class Viewer:
    who: str  # how pages and the audit log name them
    operator: bool = False
    addresses: frozenset[str] = frozenset()
    jobs: frozenset[str] = frozenset()  # jobs whose everyone's report they get
    folders: frozenset[tuple[str, str]] = frozenset()  # (job, folder) of scoped reports for them
    handles: frozenset[str] = frozenset()  # their Slack handles, as runs recorded them: deliveries only
    claims: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def everything(self) -> bool:
        return self.operator

    def sees_job(self, job: str) -> bool:
        return self.operator or job in self.jobs

    def output_clause(self) -> tuple[str, list]:
        """SQL over outputs `o` joined with runs `r`: the outputs this reader may see."""
        if self.operator:
            return "1 = 1", []
        parts, params = [], []
        if self.jobs:
            parts.append(f"(o.recipient = ? AND r.job IN ({_marks(self.jobs)}))")
            params += [EVERYONE, *sorted(self.jobs)]
        mine = self._mine()
        if mine[0]:
            parts.append(f"(o.recipient <> ? AND ({mine[0]}))")
            params += [EVERYONE, *mine[1]]
        return ("(" + " OR ".join(parts) + ")" if parts else "1 = 0"), params

    def _mine(self) -> tuple[str, list]:
        """Scoped outputs made for this reader (their address, or a folder a link named)."""
        parts, params = [], []
        if self.addresses:
            marks = _marks(self.addresses)
            parts.append(f"o.email IN ({marks}) OR o.slack IN ({marks})")
            params += sorted(self.addresses) * 2
        for job, folder in sorted(self.folders):
            parts.append("(r.job = ? AND o.folder = ?)")
            params += [job, folder]
        return " OR ".join(parts), params

    def run_clause(self) -> tuple[str, list]:
        """SQL over runs `r`: the runs this reader may see (a job of theirs, or one that made
        an output for them)."""
        if self.operator:
            return "1 = 1", []
        parts, params = [], []
        if self.jobs:
            parts.append(f"r.job IN ({_marks(self.jobs)})")
            params += sorted(self.jobs)
        mine = self._mine()
        if mine[0]:
            parts.append(
                f"EXISTS (SELECT 1 FROM outputs o WHERE o.run_id = r.id AND o.recipient <> ? AND ({mine[0]}))"
            )
            params += [EVERYONE, *mine[1]]
        return ("(" + " OR ".join(parts) + ")" if parts else "1 = 0"), params

    def delivery_visible(self, job: str, recipient: str, address: str | None) -> bool:
        """A delivery is shown to operators, and to the reader it went to."""
        if self.operator:
            return True
        said = {recipient.lower(), (address or "").lower()}
        return bool(said & (self.addresses | self.handles)) or recipient.lower() in self.group_routes(job)

    def group_routes(self, job: str) -> frozenset[str]:
        return frozenset(self.claims.get("routes", {}).get(job, ()))


def _marks(values: frozenset | set) -> str:
    return ",".join("?" * len(values))


def viewer_for(config: HeraldConfig, who: str) -> Viewer:
    """The reader a signed-in subject is: an address, `job:NAME` or `folder:JOB/FOLDER`."""
    operators = {a.lower() for a in config.web.operators}
    if who.startswith("job:"):
        job = who.removeprefix("job:")
        jobs = frozenset({job} & set(config.reports))
        routes = {job: sorted(fixed_routes(config, job))} if jobs else {}
        return Viewer(f"recipients of {job}", jobs=jobs, claims={"routes": routes})
    if who.startswith("folder:"):
        job, _, folder = who.removeprefix("folder:").partition("/")
        return Viewer(f"{job}/{folder}", folders=frozenset({(job, folder)}))
    address = who.lower()
    jobs = frozenset(job for job in config.reports if address in fixed_routes(config, job))
    return Viewer(who, operator=address in operators, addresses=frozenset({address}), jobs=jobs)
