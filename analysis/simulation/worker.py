"""One simulated worker's browser session on the study's worker pages (see
``analysis.simulation`` for the behaviour and the clock).

No Django here: the worker speaks to the pages through a transport
(:mod:`analysis.simulation.transport`), so the rehearsal's driver runs it in a process of its
own against a served platform.
"""

from __future__ import annotations

import datetime as dt
import time

import numpy as np

from .errors import SimulationError

_MAX_STEPS = 2_000
# A refine round being prepared is polled for at most a minute.
_ROUND_POLLS = 600
_ROUND_POLL_S = 0.1


class Clock:
    """Virtual time: ``advance`` moves it at once (the in-process simulation patches the
    server's clock to it)."""

    def __init__(self, start: dt.datetime) -> None:
        self.time = start

    def now(self) -> dt.datetime:
        return self.time

    def advance(self, seconds: float) -> None:
        self.time += dt.timedelta(seconds=float(seconds))


class SleepingClock:
    """Real time: ``advance`` sleeps ``seconds * scale`` (a think time scaled down so a whole
    study fits in minutes)."""

    def __init__(self, scale: float) -> None:
        if scale < 0:
            raise ValueError(f"think-time scale must be >= 0, got {scale}")
        self.scale = scale

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def advance(self, seconds: float) -> None:
        if self.scale:
            time.sleep(float(seconds) * self.scale)


class Worker:
    """One simulated worker's browser session.

    ``truth(task)`` gives the image ids truly holding the target of ``task`` (the page's task
    view); ``acknowledged`` collects every client event id the platform answered 200 for
    (events, refines, questionnaire answers): each must be stored exactly once.
    """

    def __init__(
        self, *, transport, index, seed, model, clock, truth, report, mode, mturk_params=None
    ) -> None:
        self.transport, self.index, self.seed, self.model = transport, index, seed, model
        self.mturk_params = mturk_params
        self.clock, self.truth, self.report, self.mode = clock, truth, report, mode
        self.rng = np.random.default_rng([seed, index])
        self.skew = float(self.rng.normal(0.0, 1.5))
        self.assignment: int | None = None
        self.n_events = 0
        self.acknowledged: list[str] = []

    # -- HTTP -----------------------------------------------------------------------------------
    def _post(self, name: str, body: dict) -> dict:
        self.report.requests += 1
        status, data = self.transport.post_json(name, {"assignment": self.assignment, **body})
        if status == 200 and data and "state" in data:
            if "id" in body and name in ("event", "refine", "answers"):
                self.acknowledged.append(body["id"])
            return data["state"]
        if 400 <= status < 500 and getattr(self.transport, "retried_last", False):
            # A retried step whose first attempt was applied but its answer lost: the page
            # reloads its state, as hit.js does.
            return self._state()
        raise SimulationError(
            f"worker {self.index}: POST {name} answered {status}: {str(data)[:300]}"
        )

    def _state(self) -> dict:
        self.report.requests += 1
        status, data = self.transport.get_json("state")
        if status != 200 or not data:
            raise SimulationError(f"worker {self.index}: state answered {status}")
        return data["state"]

    def open(self) -> bool:
        """Accept the HIT; False (and the page's reason in the report) when refused."""
        self.report.requests += 1
        if self.mode == "lab":
            status, _ = self.transport.open_lab(f"sim{self.seed}-{self.index}")
            ok = status == 302
        else:
            params = self.mturk_params or {
                "assignmentId": f"SIM{self.seed}A{self.index}",
                "hitId": f"SIM{self.seed}HIT",
                "workerId": f"SIM{self.seed}W{self.index}",
                "turkSubmitTo": "https://workersandbox.mturk.com",
            }
            status, _ = self.transport.open_mturk(params)
            ok = status == 200
        if not ok:
            self.report.refused.append(f"worker {self.index}: HTTP {status}")
            return False
        # The page learns its assignment from the state endpoint, as the browser's script does.
        self.report.requests += 1
        status, data = self.transport.get_json("state")
        if status != 200 or not data:
            self.report.refused.append(f"worker {self.index}: state answered {status}")
            return False
        self.assignment = data["state"]["assignment"]
        return True

    # -- behaviour ------------------------------------------------------------------------------
    def _time(self) -> str:
        return (self.clock.now() + dt.timedelta(seconds=self.skew)).isoformat()

    def _judge(self, task: dict, image_id: int, kind: str) -> dict:
        self.n_events += 1
        self.report.judgements += 1
        return self._post(
            "event",
            {"id": f"sim-{task['id']}-{self.n_events}", "type": kind, "task": task["id"],
             "image": image_id, "round": task["round"], "time": self._time()},
        )  # fmt: skip

    def _load_images(self, task: dict) -> None:
        """What the browser loads for a round: each result's image and, with explanations,
        its overlay (only transports that fetch bytes do; the in-process one skips it)."""
        fetch = getattr(self.transport, "get_bytes", None)
        if fetch is None:
            return
        for card in task["results"]:
            fetch(f"image/{card['id']}")
            if card.get("overlay"):
                fetch(f"image/{card['id']}?overlay={task['id']}")

    def _seconds(self, xai: bool) -> float:
        factor = self.model.xai_time_factor if xai else 1.0
        return self.model.seconds_per_judgement * factor * float(self.rng.lognormal(0.0, 0.35))

    def search(self, task: dict) -> dict:
        """Judge the round's results, then refine or finish; returns the next state."""
        model, xai = self.model, task["xai"]
        positives = self.truth(task)
        miss = model.miss_rate * (1 - model.xai_miss_reduction) if xai else model.miss_rate
        self._load_images(task)
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
        if current.get("preparing"):
            return self._await_round(task)
        self.clock.advance(model.refine_seconds)
        if current["can_refine"]:
            self.n_events += 1
            return self._post(
                "refine", {"task": task["id"], "id": f"sim-{task['id']}-refine-{self.n_events}"}
            )
        return self._post("finish", {"task": task["id"]})

    def _await_round(self, task: dict) -> dict:
        """Wait, as the page does, for a refine round being prepared (on the gpu queue, or in
        the web process without a broker); a round the page says is delayed is retried once
        per wait. Bounded: ``_ROUND_POLLS`` state reads, ``_ROUND_POLL_S`` apart."""
        retried = False
        for _ in range(_ROUND_POLLS):
            state = self._state()
            current = state.get("task") or {}
            preparing = current.get("preparing") if state.get("stage") == "task" else None
            if not preparing:
                return state
            if preparing.get("delayed") and not retried:
                retried = True
                state = self._post("refine-retry", {"task": task["id"]})
                continue
            time.sleep(_ROUND_POLL_S)
        raise SimulationError(
            f"worker {self.index}: round {preparing['round']} of task {task['id']} was not "
            f"ready after {_ROUND_POLLS} polls"
        )

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
        return self._post("answers", body)

    def run(self) -> None:
        state = self._state()
        for _ in range(_MAX_STEPS):
            stage = state["stage"]
            if stage == "done":
                self.report.submitted += 1
                return
            if stage == "tutorial":
                self.clock.advance(self.model.intro_seconds)
                state = self._post("tutorial", {})
            elif stage == "task_intro":
                self.clock.advance(self.model.intro_seconds)
                state = self._post("begin", {"task": state["task"]["id"]})
            elif stage == "task":
                state = self.search(state["task"])
            elif stage in ("questionnaire", "final"):
                state = self.answer(state)
            elif stage == "submit":
                state = self._post("submit", {})
            else:
                raise SimulationError(f"worker {self.index}: the page is in stage {stage!r}")
        raise SimulationError(f"worker {self.index}: no end after {_MAX_STEPS} steps")
