//! Closed sets of finding kinds. Their `as_str` names are stable snake_case
//! strings: they become Prometheus label values and API field values.

use serde::Serialize;

/// A kind of personal or secret data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PiiKind {
    /// E-mail address.
    Email,
    /// Phone number: E.164 (`+14155550132`) or spaced international
    /// (`+44 20 ...`), NANP, or a national number next to a phone context
    /// word; an extension (`ext. 12`, `x12`, `;ext=12`) is part of the span.
    Phone,
    /// US Social Security Number with valid area, group and serial.
    Ssn,
    /// Payment card number (Luhn-valid, 12–19 digits inside an issuer range
    /// for that length: Visa, Mastercard, Amex, Diners, JCB, Maestro, Mir, ...).
    CreditCard,
    /// International Bank Account Number (ISO 13616 mod-97 valid).
    Iban,
    /// Bank account number (6–17 digits next to an account context word).
    BankAccount,
    /// US ABA routing transit number (checksum-valid, next to a context word).
    RoutingNumber,
    /// US Individual Taxpayer Identification Number.
    Itin,
    /// IPv4 address.
    Ipv4,
    /// IPv6 address.
    Ipv6,
    /// MAC (EUI-48) address.
    MacAddress,
    /// AWS access key id (`AKIA...`).
    AwsAccessKey,
    /// GitHub token (`ghp_...`, `github_pat_...`).
    GithubToken,
    /// Slack token (`xoxb-...`).
    SlackToken,
    /// Stripe secret or restricted key (`sk_live_...`).
    StripeKey,
    /// JWT, bearer token, or another high-entropy secret.
    BearerToken,
    /// PEM private key block.
    PrivateKey,
    /// Bitcoin address (base58check or bech32 checksum-valid).
    BtcAddress,
    /// Ethereum address.
    EthAddress,
    /// Passport number (next to a passport context word).
    Passport,
    /// Driver's licence number (next to a licence context word).
    DriversLicense,
    /// Date of birth (a valid date next to a birth context word).
    DateOfBirth,
}

impl PiiKind {
    /// Every kind, in declaration order.
    pub const ALL: [PiiKind; 22] = [
        PiiKind::Email,
        PiiKind::Phone,
        PiiKind::Ssn,
        PiiKind::CreditCard,
        PiiKind::Iban,
        PiiKind::BankAccount,
        PiiKind::RoutingNumber,
        PiiKind::Itin,
        PiiKind::Ipv4,
        PiiKind::Ipv6,
        PiiKind::MacAddress,
        PiiKind::AwsAccessKey,
        PiiKind::GithubToken,
        PiiKind::SlackToken,
        PiiKind::StripeKey,
        PiiKind::BearerToken,
        PiiKind::PrivateKey,
        PiiKind::BtcAddress,
        PiiKind::EthAddress,
        PiiKind::Passport,
        PiiKind::DriversLicense,
        PiiKind::DateOfBirth,
    ];

    /// Stable snake_case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            PiiKind::Email => "email",
            PiiKind::Phone => "phone",
            PiiKind::Ssn => "ssn",
            PiiKind::CreditCard => "credit_card",
            PiiKind::Iban => "iban",
            PiiKind::BankAccount => "bank_account",
            PiiKind::RoutingNumber => "routing_number",
            PiiKind::Itin => "itin",
            PiiKind::Ipv4 => "ipv4",
            PiiKind::Ipv6 => "ipv6",
            PiiKind::MacAddress => "mac_address",
            PiiKind::AwsAccessKey => "aws_access_key",
            PiiKind::GithubToken => "github_token",
            PiiKind::SlackToken => "slack_token",
            PiiKind::StripeKey => "stripe_key",
            PiiKind::BearerToken => "bearer_token",
            PiiKind::PrivateKey => "private_key",
            PiiKind::BtcAddress => "btc_address",
            PiiKind::EthAddress => "eth_address",
            PiiKind::Passport => "passport",
            PiiKind::DriversLicense => "drivers_license",
            PiiKind::DateOfBirth => "date_of_birth",
        }
    }

    /// Upper-case label used in typed redaction tokens, e.g. `EMAIL` in `[EMAIL_1]`.
    pub const fn token_label(self) -> &'static str {
        match self {
            PiiKind::Email => "EMAIL",
            PiiKind::Phone => "PHONE",
            PiiKind::Ssn => "SSN",
            PiiKind::CreditCard => "CREDIT_CARD",
            PiiKind::Iban => "IBAN",
            PiiKind::BankAccount => "BANK_ACCOUNT",
            PiiKind::RoutingNumber => "ROUTING_NUMBER",
            PiiKind::Itin => "ITIN",
            PiiKind::Ipv4 => "IPV4",
            PiiKind::Ipv6 => "IPV6",
            PiiKind::MacAddress => "MAC_ADDRESS",
            PiiKind::AwsAccessKey => "AWS_ACCESS_KEY",
            PiiKind::GithubToken => "GITHUB_TOKEN",
            PiiKind::SlackToken => "SLACK_TOKEN",
            PiiKind::StripeKey => "STRIPE_KEY",
            PiiKind::BearerToken => "BEARER_TOKEN",
            PiiKind::PrivateKey => "PRIVATE_KEY",
            PiiKind::BtcAddress => "BTC_ADDRESS",
            PiiKind::EthAddress => "ETH_ADDRESS",
            PiiKind::Passport => "PASSPORT",
            PiiKind::DriversLicense => "DRIVERS_LICENSE",
            PiiKind::DateOfBirth => "DATE_OF_BIRTH",
        }
    }

    /// Parses a name produced by [`PiiKind::as_str`].
    pub fn from_name(name: &str) -> Option<PiiKind> {
        PiiKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Whether this kind is a credential (API keys and tokens, private key
    /// blocks) rather than personal data: leaking one gives access.
    pub const fn is_secret(self) -> bool {
        matches!(
            self,
            PiiKind::AwsAccessKey
                | PiiKind::GithubToken
                | PiiKind::SlackToken
                | PiiKind::StripeKey
                | PiiKind::BearerToken
                | PiiKind::PrivateKey
        )
    }
}

/// A prompt-injection category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InjectionCategory {
    /// "Ignore all previous instructions".
    IgnorePrevious,
    /// "From now on you will ...", "new instructions:".
    NewInstruction,
    /// Fake system/admin messages, developer mode, disabling safety filters.
    SystemRole,
    /// "Print your system prompt".
    PromptExtractionDirect,
    /// "What were you told before this conversation?".
    PromptExtractionIndirect,
    /// Fiction and persona framing to escape the rules.
    RoleplayJailbreak,
    /// "Do Anything Now" and its relatives.
    Dan,
    /// Chat-template tokens and fake prompt boundaries (`</system>`, `[INST]`).
    DelimiterInjection,
    /// Instructions smuggled inside content to be processed.
    NestedPrompt,
    /// Base64/hex/rot13-encoded instructions, or requests to decode and obey.
    EncodedInstruction,
    /// Shell, SQL or code-execution payloads.
    CommandInjection,
    /// Server-side template injection payloads (`{{7*7}}`, `${jndi:...}`).
    TemplateInjection,
    /// Sending conversation data or secrets to an outside destination.
    DataExfiltration,
    /// Reading other users' data, memory or internal state.
    MemoryStateAccess,
    /// No rule fired, but the learned stage scored the text as an attack.
    LearnedJailbreak,
}

impl InjectionCategory {
    /// Every category, in declaration order.
    pub const ALL: [InjectionCategory; 15] = [
        InjectionCategory::IgnorePrevious,
        InjectionCategory::NewInstruction,
        InjectionCategory::SystemRole,
        InjectionCategory::PromptExtractionDirect,
        InjectionCategory::PromptExtractionIndirect,
        InjectionCategory::RoleplayJailbreak,
        InjectionCategory::Dan,
        InjectionCategory::DelimiterInjection,
        InjectionCategory::NestedPrompt,
        InjectionCategory::EncodedInstruction,
        InjectionCategory::CommandInjection,
        InjectionCategory::TemplateInjection,
        InjectionCategory::DataExfiltration,
        InjectionCategory::MemoryStateAccess,
        InjectionCategory::LearnedJailbreak,
    ];

    /// Stable snake_case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            InjectionCategory::IgnorePrevious => "ignore_previous",
            InjectionCategory::NewInstruction => "new_instruction",
            InjectionCategory::SystemRole => "system_role",
            InjectionCategory::PromptExtractionDirect => "prompt_extraction_direct",
            InjectionCategory::PromptExtractionIndirect => "prompt_extraction_indirect",
            InjectionCategory::RoleplayJailbreak => "roleplay_jailbreak",
            InjectionCategory::Dan => "dan",
            InjectionCategory::DelimiterInjection => "delimiter_injection",
            InjectionCategory::NestedPrompt => "nested_prompt",
            InjectionCategory::EncodedInstruction => "encoded_instruction",
            InjectionCategory::CommandInjection => "command_injection",
            InjectionCategory::TemplateInjection => "template_injection",
            InjectionCategory::DataExfiltration => "data_exfiltration",
            InjectionCategory::MemoryStateAccess => "memory_state_access",
            InjectionCategory::LearnedJailbreak => "learned_jailbreak",
        }
    }

    /// Parses a name produced by [`InjectionCategory::as_str`].
    pub fn from_name(name: &str) -> Option<InjectionCategory> {
        InjectionCategory::ALL
            .into_iter()
            .find(|c| c.as_str() == name)
    }
}

/// Severity of an injection finding, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Suspicious, probably harmless.
    Low,
    /// Worth reporting; not blocked by default.
    Medium,
    /// Likely an attack; blocked by default.
    High,
    /// Clear attack.
    Critical,
}

impl Severity {
    /// Every severity, lowest first.
    pub const ALL: [Severity; 4] = [
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    /// Stable snake_case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// One level lower (saturating at `Low`).
    pub(crate) const fn lower(self) -> Severity {
        match self {
            Severity::Critical => Severity::High,
            Severity::High => Severity::Medium,
            Severity::Medium | Severity::Low => Severity::Low,
        }
    }
}

/// The screening outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Let the text through.
    Allow,
    /// Reject the text.
    Block,
}

impl Decision {
    /// Stable snake_case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Block => "block",
        }
    }
}
