"""Building answers and research from the runtime, the gateway and the retriever."""

from __future__ import annotations

from dataclasses import dataclass

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


def build_answers(runtime: Runtime, gateway: Gateway, retriever: Retriever) -> AnswerServices:
    """Loads and checks the prompts (a bad or changed prompt stops the start, with every
    problem's file and line)."""
    prompts = PromptLibrary.load(sources_for(runtime.settings.home))
    answers = Answers(
        gateway, retriever, prompts, runtime.ledger, runtime.policy, runtime.ledger.digester
    )
    return AnswerServices(answers, Research(answers), prompts)
