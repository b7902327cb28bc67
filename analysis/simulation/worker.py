"""One simulated worker's browser session on the study's worker pages (see
``analysis.simulation`` for the behaviour and the clock)."""

from __future__ import annotations

import datetime as dt

import numpy as np
from django.conf import settings
from django.test import Client
from django.urls import reverse

from retrieval.models import Annotation
from studyplatform.studies.models import SearchTask, Study

from . import SimulationError

_MAX_STEPS = 2_000


class Clock:
    def __init__(self, start: dt.datetime) -> None:
        self.time = start

    def now(self) -> dt.datetime:
        return self.time

    def advance(self, seconds: float) -> None:
        self.time += dt.timedelta(seconds=float(seconds))


class Worker:
    """One simulated worker's browser session."""

    def __init__(
        self, *, study, index, seed, model, clock, truth, report, mode, mturk_params=None
    ) -> None:
        self.study, self.index, self.seed, self.model = study, index, seed, model
        self.mturk_params = mturk_params
        self.clock, self.truth, self.report, self.mode = clock, truth, report, mode
        self.rng = np.random.default_rng([seed, index])
        self.skew = float(self.rng.normal(0.0, 1.5))
        self.client = Client(HTTP_HOST=_host())
        self.assignment: int | None = None
        self.n_events = 0
        self.base = reverse("hit:page", kwargs={"study": study.slug})

    # -- HTTP -----------------------------------------------------------------------------------
    def _post(self, name: str, body: dict) -> dict:
        self.report.requests += 1
        response = self.client.post(
            reverse(name, kwargs={"study": self.study.slug}),
            data={"assignment": self.assignment, **body},
            content_type="application/json",
        )
        if response.status_code != 200:
            raise SimulationError(
                f"worker {self.index}: POST {name} answered {response.status_code}: {response.content[:300]!r}"
            )
        return response.json()["state"]

    def _state(self) -> dict:
        self.report.requests += 1
        response = self.client.get(reverse("hit:state", kwargs={"study": self.study.slug}))
        if response.status_code != 200:
            raise SimulationError(f"worker {self.index}: state answered {response.status_code}")
        return response.json()["state"]

    def open(self) -> bool:
        """Accept the HIT; False (and the page's reason in the report) when refused."""
        self.report.requests += 1
        if self.mode == "lab":
            url = reverse("hit:lab", kwargs={"study": self.study.slug})
            response = self.client.post(url, {"code": f"sim{self.seed}-{self.index}"})
            ok = response.status_code == 302
        else:
            params = self.mturk_params or {
                "assignmentId": f"SIM{self.seed}A{self.index}",
                "hitId": f"SIM{self.seed}HIT",
                "workerId": f"SIM{self.seed}W{self.index}",
                "turkSubmitTo": "https://workersandbox.mturk.com",
            }
            response = self.client.get(self.base, params)
            ok = response.status_code == 200
        if not ok:
            self.report.refused.append(f"worker {self.index}: HTTP {response.status_code}")
            return False
        # The page learns its assignment from the state endpoint, as the browser's script does.
        response = self.client.get(reverse("hit:state", kwargs={"study": self.study.slug}))
        self.report.requests += 1
        if response.status_code != 200:
            self.report.refused.append(
                f"worker {self.index}: state answered {response.status_code}"
            )
            return False
        self.assignment = response.json()["state"]["assignment"]
        return True

    # -- behaviour ------------------------------------------------------------------------------
    def _time(self) -> str:
        return (self.clock.now() + dt.timedelta(seconds=self.skew)).isoformat()

    def _judge(self, task: dict, image_id: int, kind: str) -> dict:
        self.n_events += 1
        self.report.judgements += 1
        return self._post(
            "hit:event",
            {"id": f"sim-{task['id']}-{self.n_events}", "type": kind, "task": task["id"],
             "image": image_id, "round": task["round"], "time": self._time()},
        )  # fmt: skip

    def _seconds(self, xai: bool) -> float:
        factor = self.model.xai_time_factor if xai else 1.0
        return self.model.seconds_per_judgement * factor * float(self.rng.lognormal(0.0, 0.35))

    def search(self, task: dict) -> dict:
        """Judge the round's results, then refine or finish; returns the next state."""
        model, xai = self.model, task["xai"]
        positives = self.truth(task["id"])
        miss = model.miss_rate * (1 - model.xai_miss_reduction) if xai else model.miss_rate
        state = None
        for card in task["results"]:
            truly = card["id"] in positives
            relevant = (
                self.rng.random() >= miss if truly else self.rng.random() < model.false_mark_rate
            )
            if self.rng.random() < model.change_rate:
                self.clock.advance(self._seconds(xai))
                opposite = "marked_not_relevant" if relevant else "marked_relevant"
                state = self._judge(task, card["id"], opposite)
                if state["stage"] != "task":
                    return state
            self.clock.advance(self._seconds(xai))
            state = self._judge(
                task, card["id"], "marked_relevant" if relevant else "marked_not_relevant"
            )
            if state["stage"] != "task":
                return state
        current = (state or {}).get("task") or task
        self.clock.advance(model.refine_seconds)
        if current["can_refine"]:
            self.n_events += 1
            return self._post(
                "hit:refine", {"task": task["id"], "id": f"sim-{task['id']}-refine-{self.n_events}"}
            )
        return self._post("hit:finish", {"task": task["id"]})

    def _answer(self, question: dict, shift: float) -> object:
        if question["points"] is None:
            return "simulated" if question["required"] else ""
        points = question["points"]
        score = self.model.likert_mean + shift + float(self.rng.normal(0.0, 0.2))
        return int(np.clip(round(1 + (points - 1) * score), 1, points))

    def answer(self, state: dict) -> dict:
        task = state["task"]
        shift = self.model.xai_likert_shift if task and task["xai"] else 0.0
        answers = {q["code"]: self._answer(q, shift) for q in state["questions"]}
        self.clock.advance(self.model.answer_seconds * len(answers))
        self.n_events += 1
        body = {
            "task": task["id"] if task else None,
            "answers": answers,
            "id": f"sim-answers-{self.n_events}",
        }
        return self._post("hit:answers", body)

    def run(self) -> None:
        state = self._state()
        for _ in range(_MAX_STEPS):
            stage = state["stage"]
            if stage == "done":
                self.report.submitted += 1
                return
            if stage == "tutorial":
                self.clock.advance(self.model.intro_seconds)
                state = self._post("hit:tutorial", {})
            elif stage == "task_intro":
                self.clock.advance(self.model.intro_seconds)
                state = self._post("hit:begin", {"task": state["task"]["id"]})
            elif stage == "task":
                state = self.search(state["task"])
            elif stage in ("questionnaire", "final"):
                state = self.answer(state)
            elif stage == "submit":
                state = self._post("hit:submit", {})
            else:
                raise SimulationError(f"worker {self.index}: the page is in stage {stage!r}")
        raise SimulationError(f"worker {self.index}: no end after {_MAX_STEPS} steps")


def _host() -> str:
    hosts = [h for h in settings.ALLOWED_HOSTS if h and h not in ("*",) and not h.startswith(".")]
    return hosts[0] if hosts else "localhost"


def truth_lookup(study: Study):
    """task id -> set of image ids annotated with the task's target class (cached per class)."""
    by_class: dict[int, set[int]] = {}
    class_of: dict[int, int] = {}

    def positives(task_id: int) -> set[int]:
        if task_id not in class_of:
            class_of[task_id] = SearchTask.objects.values_list("query__category_id", flat=True).get(
                pk=task_id
            )
        category = class_of[task_id]
        if category not in by_class:
            rows = Annotation.objects.filter(archive=study.archive_id, category_id=category)
            by_class[category] = set(rows.values_list("image_id", flat=True))
        return by_class[category]

    return positives
