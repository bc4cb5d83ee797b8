//! The coder arm (capabilities `generate_code` and `explain_code`): asks the
//! LLM, then checks the fenced code of the answer where that is cheap
//! ([`syntax`]) and reports the finding in the output; a malformed block
//! lowers the confidence but is not an error (the judge decides).

pub mod syntax;

use arm_kit::{Arm, ArmError, ArmParts, Call};
use arm_protocol::{ArmKind, ExecuteResponse, capability};
use llm_client::{ChatMessage, LlmArgs, LlmClient, LlmConfig};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use service_kit::{Kit, KitArgs};

use crate::syntax::{Check, CodeBlock};

/// Longest instruction, in characters.
pub const INSTRUCTION_MAX_CHARS: usize = 10_000;
/// Longest code given, in characters.
pub const CODE_MAX_CHARS: usize = 100_000;
/// Largest answer asked of the LLM, in tokens.
const ANSWER_MAX_TOKENS: u32 = 4_096;

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "coder-arm",
    version,
    about = "OctoLLM coder arm: writes and explains code with the LLM.",
    long_about = "OctoLLM coder arm: POST /v1/execute with capability `generate_code` or \
`explain_code` and input {language, instruction, code?} answers the LLM's text, its fenced \
code blocks and, where cheap (JSON parses; brackets, strings and comments balance in C-like \
languages, Rust and Python), whether each block is well formed.\n\nEvery flag can also be set \
through the environment variable shown next to it."
)]
pub struct Args {
    #[command(flatten)]
    pub kit: KitArgs,
    #[command(flatten)]
    pub llm: LlmArgs,
}

/// Builds the coder from its flags; its LLM metrics go to the kit's registry.
pub fn build(args: &Args, kit: &Kit) -> Result<ArmParts<Coder>, llm_client::LlmError> {
    let llm = LlmClient::new(LlmConfig::from_args(&args.llm)?, kit.registry())?;
    Ok(ArmParts::new(Coder::new(llm)))
}

pub struct Coder {
    llm: LlmClient,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeInput {
    language: String,
    instruction: String,
    #[serde(default)]
    code: Option<String>,
}

/// The syntax verdict over all blocks of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyntaxCheck {
    /// Every checked block is well formed.
    Passed,
    /// At least one block is malformed.
    Failed,
    /// Blocks exist, but none in a language with a cheap check.
    Unchecked,
    /// The answer has no fenced code.
    NoCode,
}

pub fn verdict(blocks: &[CodeBlock]) -> SyntaxCheck {
    if blocks.is_empty() {
        SyntaxCheck::NoCode
    } else if blocks.iter().any(|b| b.check == Check::Malformed) {
        SyntaxCheck::Failed
    } else if blocks.iter().any(|b| b.check == Check::WellFormed) {
        SyntaxCheck::Passed
    } else {
        SyntaxCheck::Unchecked
    }
}

impl Coder {
    pub fn new(llm: LlmClient) -> Self {
        Self { llm }
    }

    fn messages(capability: &str, input: &CodeInput) -> Vec<ChatMessage> {
        let language = input.language.trim();
        let system = if capability == capability::GENERATE_CODE {
            format!(
                "You write {language} code. Answer with one fenced code block (```{language}) \
                 holding the complete code, then at most three sentences on how to use it."
            )
        } else {
            format!(
                "You explain {language} code to an engineer: what it does, how, and any bugs \
                 or risks you see. Quote code only in fenced blocks."
            )
        };
        let mut user = format!("{}\n", input.instruction.trim());
        if let Some(code) = &input.code {
            user.push_str(&format!("\n```{language}\n{code}\n```\n"));
        }
        vec![ChatMessage::system(system), ChatMessage::user(user)]
    }
}

impl Arm for Coder {
    fn kind(&self) -> ArmKind {
        ArmKind::Coder
    }

    fn cost_tier(&self) -> u8 {
        3
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["language", "instruction"],
            "properties": {
                "language": {"type": "string", "pattern": "^[A-Za-z0-9+#._-]{1,32}$"},
                "instruction": {
                    "type": "string", "minLength": 1, "maxLength": INSTRUCTION_MAX_CHARS, "pattern": "\\S"
                },
                "code": {"type": ["string", "null"], "maxLength": CODE_MAX_CHARS}
            }
        })
    }

    fn output_schema(&self) -> Value {
        json!({
            "type": "object",
            "required": ["language", "answer", "code_blocks", "syntax_check"],
            "properties": {
                "language": {"type": "string"},
                "answer": {"type": "string"},
                "code_blocks": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["language", "code", "check"],
                        "properties": {
                            "language": {"type": "string"},
                            "code": {"type": "string"},
                            "check": {"enum": ["well_formed", "malformed", "unchecked"]},
                            "issue": {"type": "string"}
                        }
                    }
                },
                "syntax_check": {"enum": ["passed", "failed", "unchecked", "no_code"]}
            }
        })
    }

    async fn execute(&self, call: Call) -> Result<ExecuteResponse, ArmError> {
        let input: CodeInput = call.input()?;
        if call.capability == capability::EXPLAIN_CODE
            && input.code.as_deref().is_none_or(|c| c.trim().is_empty())
        {
            return Err(ArmError::invalid(
                "input.code",
                "explain_code needs the code to explain",
            ));
        }
        let (answer, usage) = arm_kit::llm::text(
            &self.llm,
            Self::messages(call.capability, &input),
            ANSWER_MAX_TOKENS,
            call.deadline,
        )
        .await?;
        let language = input.language.trim().to_owned();
        let blocks = syntax::code_blocks(&answer, &language);
        let check = verdict(&blocks);
        tracing::info!(blocks = blocks.len(), syntax_check = ?check, "answered");
        let confidence = match (call.capability, check) {
            (_, SyntaxCheck::Failed) => 0.3,
            (capability::GENERATE_CODE, SyntaxCheck::Passed) => 0.8,
            (capability::GENERATE_CODE, SyntaxCheck::Unchecked) => 0.6,
            (capability::GENERATE_CODE, SyntaxCheck::NoCode) => 0.2,
            _ => 0.7,
        };
        Ok(ExecuteResponse {
            output: json!({
                "language": language,
                "answer": answer,
                "code_blocks": blocks,
                "syntax_check": check,
            }),
            usage,
            confidence,
        })
    }
}
