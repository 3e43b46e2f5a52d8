"""Building answers and research from the runtime, the gateway and the retriever."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bastion.agent.research import Research
from bastion.documents.retrieval import Retriever
from bastion.gateway.service import Gateway
from bastion.prompts import PromptLibrary, sources_for
from bastion.rag.service import Answers
from bastion.runtime import Runtime


@dataclass
class AnswerServices:
    answers: Answers
    research: Research
    prompts: PromptLibrary


def load_prompts(home: Path) -> PromptLibrary:
    """The shipped prompts and the operator's, checked and pinned: a bad or changed one
    raises with every problem's file and line, and the server does not start."""
    return PromptLibrary.load(sources_for(home))


def build_answers(
    runtime: Runtime, gateway: Gateway, retriever: Retriever, prompts: PromptLibrary | None = None
) -> AnswerServices:
    prompts = prompts or load_prompts(runtime.settings.home)
    answers = Answers(
        gateway, retriever, prompts, runtime.ledger, runtime.policy, runtime.ledger.digester
    )
    return AnswerServices(answers, Research(answers), prompts)
