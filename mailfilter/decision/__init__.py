"""Pure decision code: the policy, `decide()`, the verdict vocabulary,
reply texts per outcome, the header fields we add and the amavis log line."""
