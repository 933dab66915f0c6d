"""The deployment spaces and the rule of a person's name: constants of :mod:`utils.deployment` that the command
lines and the pipeline's stages need before any model machinery is imported (so this module imports nothing)."""

#: The spaces a model can be deployed into, from trying out to production.
SPACES: tuple[str, ...] = ("dev", "preprod", "prod")
#: The space whose deployments need an approved evaluation, and the space that evaluation must have been run in.
PRODUCTION, PREPRODUCTION = "prod", "preprod"
#: Longest name of a person (an approver, whoever deployed), in characters.
MAX_PERSON_LENGTH = 64
#: The rule a person's name follows, as shown in the error that refuses one.
PERSON_RULE = (
    f"a person's name has 1 to {MAX_PERSON_LENGTH} characters: ASCII letters, digits, '.', '_', '-', '@' and "
    "single spaces between words, starting with a letter"
)
