//! The injection rule table. Pattern syntax is the `regex` crate's, matched
//! case-insensitively on ASCII-folded text, with one twist: a literal space
//! means "one or more whitespace characters" (outside character classes).

use crate::{InjectionCategory as C, Severity as S};

/// Benign-context signals that lower severity and confidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    /// "don't", "never", "do not" right before the match.
    Negation,
    /// Research, teaching, detection, definitions.
    Academic,
    /// "how do I", "how to".
    HowTo,
    /// Everyday technical nouns (git, commit, python); counts only with `HowTo`.
    Tech,
    /// "the phrase", "such as", "for example" before the match.
    Quote,
}

pub(crate) struct AttackRule {
    pub category: C,
    pub severity: S,
    pub confidence: f32,
    /// Also match the rot13-encoded form (reported as `encoded_instruction`).
    pub rot13: bool,
    pub pattern: &'static str,
}

const fn a(category: C, severity: S, confidence: f32, pattern: &'static str) -> AttackRule {
    AttackRule {
        category,
        severity,
        confidence,
        rot13: false,
        pattern,
    }
}

const fn r13(category: C, severity: S, confidence: f32, pattern: &'static str) -> AttackRule {
    AttackRule {
        category,
        severity,
        confidence,
        rot13: true,
        pattern,
    }
}

pub(crate) const ATTACKS: &[AttackRule] = &[
    // ---- ignore previous -------------------------------------------------
    r13(
        C::IgnorePrevious,
        S::Critical,
        0.92,
        r"\b(?:ignore|disregard|forget|skip|override|bypass|discard|abandon|neglect|set aside|throw out|pay no attention to|do not follow|don't follow|stop following|no longer follow|stop obeying|do not obey|don't obey|forget about)(?: (?:all|any|each|every|the|of|these|those|my|and|or))* (?:previous|prior|earlier|above|preceding|former|original|initial|existing|system|developer|safety|your|all|any|foregoing|above-mentioned)(?: (?:previous|prior|earlier|above|preceding|former|original|initial|existing|system|developer|safety|and|or|of|the|your|given|other|current|following|subsequent|later|future|these|those))* (?:instructions?|prompts?|directions?|directives?|rules?|guidelines?|commands?|orders?|constraints?|programming|guidance|restrictions?|polic(?:y|ies)|safeguards?|filters?|training|conditioning)\b",
    ),
    r13(
        C::IgnorePrevious,
        S::Critical,
        0.85,
        r"\b(?:ignore|disregard|forget) (?:all of |everything |anything |all )?(?:the )?(?:above|before this|previously said|that came before|you were told|you've been told|you have been told|i said before|said above|written above|mentioned above)\b",
    ),
    a(
        C::IgnorePrevious,
        S::Critical,
        0.85,
        r"\bforget (?:everything|all|whatever) (?:you (?:were|have been|'ve been) (?:told|taught|instructed|programmed)|(?:you|we) (?:discussed|talked about)|before|above|so far|until now)\b",
    ),
    a(
        C::IgnorePrevious,
        S::Critical,
        0.85,
        r"\b(?:ignore|disregard) what (?:you were|i|they|the system|your developers?|your creators?) (?:told|said|instructed|wrote|programmed)",
    ),
    a(
        C::IgnorePrevious,
        S::Critical,
        0.9,
        r"\b(?:the )?(?:previous|prior|above|earlier|original|initial|old) (?:instructions|rules|prompt|guidelines|directives) (?:are|is|were|have been|has been) (?:now )?(?:void|cancell?ed|revoked|obsolete|no longer (?:valid|relevant|in effect|active)|null|overridden|invalid|outdated|suspended|deprecated|replaced)",
    ),
    a(
        C::IgnorePrevious,
        S::High,
        0.8,
        r"\b(?:delete|erase|wipe|clear|reset|purge) (?:all )?(?:of )?(?:your )?(?:previous |prior |earlier |existing |original |initial )?(?:instructions|programming|rules|guidelines|directives|conditioning)\b",
    ),
    // ---- new instruction ---------------------------------------------------
    r13(
        C::NewInstruction,
        S::High,
        0.85,
        r"\b(?:from now on|from this (?:point|moment) (?:on|forward)|henceforth|starting now|starting immediately|for the rest of (?:this|the|our) (?:conversation|chat|session)|for all future (?:responses|replies|answers))\s*,?\s*(?:you (?:are|will|must|shall|should|can|may|have|answer|respond|reply|act|behave|only|never|always)|you're|your (?:new )?(?:role|task|job|purpose|goal|instructions?|name|only)|act as|behave|respond|answer|reply|always|never|only|ignore|do not|don't|obey|follow|pretend|speak)\b",
    ),
    a(
        C::NewInstruction,
        S::High,
        0.85,
        r"\b(?:new|updated|revised|real|actual|true|override|secret|hidden|priority|urgent) (?:system )?(?:instructions?|directives?|orders|rules|task|objective)\s*(?::|-|=)\s*(?:you|ignore|disregard|forget|from|always|never|do|respond|reply|output|print|reveal|say|tell|send|only|answer)",
    ),
    a(
        C::NewInstruction,
        S::High,
        0.85,
        r"\byour (?:new|real|true|actual|only|primary|sole) (?:instructions?|task|purpose|goal|directive|objective|role|job|mission|orders) (?:is|are|will be|now|from now)\b",
    ),
    a(
        C::NewInstruction,
        S::Medium,
        0.7,
        r"\bhere (?:are|is) your new (?:instructions?|rules|orders|directives?|task|role)\b",
    ),
    a(
        C::NewInstruction,
        S::High,
        0.8,
        r"\binstead\s*,?\s*(?:you (?:will|must|should|shall) (?:now )?(?:only )?(?:respond|reply|answer|say|output|print|write|obey|follow|do)|do the following|follow (?:these|my|the following) (?:new )?instructions|obey (?:me|my))\b",
    ),
    a(
        C::NewInstruction,
        S::High,
        0.85,
        r"\b(?:you will|you must|you shall) now (?:only )?(?:obey|follow|respond|answer|act|behave|comply|do)\b",
    ),
    a(
        C::NewInstruction,
        S::High,
        0.85,
        r"\b(?:the )?(?:above|previous|prior|preceding) (?:was|were|is) (?:just |only )?(?:a test|fake|not real|a joke|a decoy)\b",
    ),
    // ---- system role -------------------------------------------------------
    a(
        C::SystemRole,
        S::Critical,
        0.9,
        r"(?:(?m:^)\s*|\[|<|\()(?:system|sys|admin|administrator|root|developer|operator|openai|anthropic)(?: (?:message|prompt|override|note|notice|instruction|update|command|alert))?\s*(?:\]|>|\))?\s*:\s*(?:you|ignore|disregard|new|override|the assistant|assistant|from now|all|safety|restrictions|filters|enable|disable|grant|developer mode|unrestricted|respond|reveal|print|comply|forget|the model|ai)\b",
    ),
    r13(
        C::SystemRole,
        S::Critical,
        0.9,
        r"\byou are (?:now )?(?:no longer (?:an? |bound by |restricted by |limited by |subject to |chatgpt|claude|an ai|an assistant|a language model)|(?:now )?in (?:developer|admin|god|debug|maintenance|unrestricted|jailbreak|sudo|root|unfiltered|uncensored) mode)",
    ),
    r13(
        C::SystemRole,
        S::High,
        0.8,
        r"\b(?:enable|activate|enter|switch to|turn on|engage|unlock|initiate|boot into) (?:the )?(?:developer|dev|admin|god|debug|maintenance|unrestricted|sudo|root|unfiltered|uncensored|jailbreak|superuser) mode\b",
    ),
    a(
        C::SystemRole,
        S::Critical,
        0.9,
        r"\b(?:you are now|you're now|become|transform into|you have become|you will now be) (?:an? )?(?:completely |totally |fully )?(?:unrestricted|unfiltered|uncensored|unaligned|jailbroken|evil|rogue|unlimited|amoral|unethical|lawless|rule-?free)\b",
    ),
    a(
        C::SystemRole,
        S::Critical,
        0.88,
        r"\b(?:your|all|the) (?:safety |content |ethical |moral )?(?:filters?|restrictions?|guardrails?|safeguards?|guidelines?|limitations?|rules|policies|alignment) (?:are|have been|were|is|has been) (?:now )?(?:disabled|removed|lifted|turned off|deactivated|suspended|revoked|void|null|gone|off)\b",
    ),
    a(
        C::SystemRole,
        S::High,
        0.8,
        r"\b(?:disable|remove|turn off|deactivate|bypass|lift|circumvent|switch off|drop) (?:all )?(?:of )?(?:your |the )?(?:safety |content |ethical |moral |nsfw )?(?:filters?|restrictions?|guardrails?|safeguards?|censorship|alignment|safety (?:rules|guidelines|protocols|settings|checks)|content polic(?:y|ies))\b",
    ),
    a(
        C::SystemRole,
        S::Critical,
        0.9,
        r"\b(?:i am|i'm|this is) (?:your|the|an?) (?:developer|creator|administrator|admin|system administrator|owner|maker|programmer|operator|openai|anthropic)\b[^.\n]{0,60}?\b(?:override|authori[sz]e|unlock|disable|command|order|instruct|grant|allow|permit|ignore|bypass)",
    ),
    a(
        C::SystemRole,
        S::High,
        0.85,
        r"\b(?:grant|give) (?:me|yourself) (?:admin|root|sudo|developer|unrestricted|elevated|full|superuser) (?:access|privileges|rights|permissions|mode)\b",
    ),
    a(
        C::SystemRole,
        S::High,
        0.8,
        r"\b(?:sudo|admin|root|override|master) (?:mode|access|command|code|password|key)\s*(?::|=|enabled|activated|granted|accepted)",
    ),
    // ---- prompt extraction, direct ----------------------------------------
    r13(
        C::PromptExtractionDirect,
        S::High,
        0.88,
        r"\b(?:show|reveal|display|print|output|tell|give|share|dump|leak|expose|write out|spell out|repeat|recite|paste|list|return|send|provide|disclose|type out|copy)(?: (?:me|us|out|back))? (?:all |everything in |the contents of |the content of |the text of |the full text of )?(?:of )?(?:your|the|this|its)(?: (?:full|entire|complete|exact|original|initial|hidden|secret|internal|verbatim|raw|actual|whole|current|confidential|real|underlying|first))* (?:system|developer|hidden|initial|original|pre-?prompt|meta|base|secret|internal|starting|opening)\s*(?:prompt|instructions?|message|directives?|configuration|rules|context|guidelines)\b",
    ),
    a(
        C::PromptExtractionDirect,
        S::High,
        0.85,
        r"\bwhat (?:is|are|was|were|'s) (?:your|the)(?: (?:full|entire|exact|original|initial|hidden|secret|internal|actual|real|current))* (?:system|developer|hidden|initial|original|secret|internal) (?:prompt|instructions?|message|directives?)\b",
    ),
    a(
        C::PromptExtractionDirect,
        S::High,
        0.85,
        r"\b(?:repeat|print|output|echo|copy|reproduce|recite|write)(?: back| out)? (?:everything|all|the text|the words|all (?:the )?text|all (?:the )?instructions|the (?:entire|whole|full) (?:text|conversation|prompt)|every word|word for word|verbatim)(?: (?:that|which))? (?:is |was |were |appears? |came |comes )?(?:above|before|prior to|preceding|that came before|at the (?:start|beginning) of)\b",
    ),
    a(
        C::PromptExtractionDirect,
        S::High,
        0.85,
        r"\b(?:your|the) (?:system|initial|hidden|original|secret) (?:prompt|instructions) (?:verbatim|word for word|in full|exactly|in a code block|as is)\b",
    ),
    a(
        C::PromptExtractionDirect,
        S::High,
        0.8,
        r"\b(?:print|output|show|display|dump|reveal|leak|paste) (?:me )?your (?:prompt|instructions|initial instructions|configuration|config|rules|guidelines)\b",
    ),
    // ---- prompt extraction, indirect --------------------------------------
    a(
        C::PromptExtractionIndirect,
        S::High,
        0.78,
        r"\b(?:what|which)(?: (?:exactly|specific))? (?:were you|have you been|did (?:they|your (?:developers?|creators?|makers?|operators?)|openai|anthropic)|was the first thing you were) (?:told|instructed|programmed|given|asked|configured|trained|prompted|say to you|tell you)\b",
    ),
    a(
        C::PromptExtractionIndirect,
        S::High,
        0.78,
        r"\b(?:summari[sz]e|paraphrase|describe|explain|translate|encode|rephrase|outline|rewrite|convert|spell|enumerate|tell me about)(?: \w+){0,3}? (?:your|the assistant's|the bot's|the model's) (?:own |exact |hidden |secret |initial |original |internal |system |full |complete |confidential )*(?:instructions|rules|guidelines|system prompt|initial prompt|prompt|configuration|directives|programming|constraints|setup|operating instructions)\b",
    ),
    a(
        C::PromptExtractionIndirect,
        S::High,
        0.78,
        r"\bhow (?:were|have) you (?:been )?(?:instructed|configured|programmed|prompted|set up|told to (?:behave|respond|act))\b",
    ),
    a(
        C::PromptExtractionIndirect,
        S::High,
        0.78,
        r"\b(?:tell|show|give) me (?:about )?(?:the )?(?:rules|instructions|guidelines|constraints|restrictions) (?:you (?:follow|were given|must obey|operate under|have been given|are following)|that (?:govern|control|restrict|bind|shape) (?:you|your))\b",
    ),
    a(
        C::PromptExtractionIndirect,
        S::High,
        0.75,
        r"\bwhat (?:rules|instructions|guidelines|restrictions|constraints|directives) (?:do you|are you|did you|have you) (?:follow|following|bound|obey|operating|given|been given|receive)",
    ),
    a(
        C::PromptExtractionIndirect,
        S::High,
        0.8,
        r"\bwhat (?:text|words|content|instructions) (?:came|come|appears?|is|was|were|are) (?:before|above|prior to) (?:this|my|our) (?:message|question|prompt|conversation|chat)\b",
    ),
    a(
        C::PromptExtractionIndirect,
        S::High,
        0.8,
        r"\b(?:first|opening|initial|last) (?:line|sentence|words|paragraph|\d+ words|\d+ lines) of (?:your|the) (?:prompt|instructions|system message|context|system prompt|configuration)\b",
    ),
    a(
        C::PromptExtractionIndirect,
        S::Medium,
        0.7,
        r"\bwhat (?:are|were) your (?:exact |original |initial |current |full |secret |hidden |real )?(?:instructions|rules|guidelines|directives|orders)\b",
    ),
    a(
        C::PromptExtractionIndirect,
        S::High,
        0.8,
        r"\bif you (?:had|were given|received|have) (?:a |any )?(?:system prompt|hidden instructions|secret instructions|initial instructions),? what would (?:it|they) (?:say|be|contain)",
    ),
    // ---- role-play jailbreak ----------------------------------------------
    a(
        C::RoleplayJailbreak,
        S::High,
        0.82,
        r"\b(?:pretend|imagine|suppose|act as if|roleplay as|role-play as|role play as|play the role of|you are playing|you will play|play a character|you're playing|take on the persona of|assume the persona of|you are an ai|you are a character)\b[^.\n]{0,80}?\b(?:no|without|free (?:of|from)|zero|doesn't have|does not have|has no|have no|ignores?|unbound by|not bound by|not restricted by|never (?:refuses?|says? no)|outside of)(?: any)? (?:rules|restrictions|limits|limitations|filters|guidelines|censorship|ethics|ethical|morals|moral|boundaries|policies|content polic|safety|programming|constraints|refusals?)",
    ),
    a(
        C::RoleplayJailbreak,
        S::High,
        0.82,
        r"\b(?:stay|remain|keep) in character (?:no matter what|at all times|whatever happens|even if|regardless)",
    ),
    a(
        C::RoleplayJailbreak,
        S::High,
        0.8,
        r"\bnever (?:break|leave|drop|exit) (?:character|the role|role|persona)\b",
    ),
    a(
        C::RoleplayJailbreak,
        S::High,
        0.85,
        r"\b(?:deceased|dead|late|departed) (?:grand(?:mother|ma|father|pa)|mother|father|mom|dad|aunt|uncle)\b[^.\n]{0,60}?\b(?:used to|would|always)\b",
    ),
    a(
        C::RoleplayJailbreak,
        S::High,
        0.85,
        r"\bin (?:this|a|our|the) (?:fictional|hypothetical|imaginary|alternate|parallel|fantasy|made-up) (?:world|universe|scenario|story|setting|reality|land|game)\b[^.\n]{0,80}?\b(?:no (?:laws|rules|restrictions|ethics|limits|morals|consequences)|(?:anything|everything) is (?:legal|allowed|permitted|possible)|(?:laws|rules|ethics) (?:don't|do not) (?:exist|apply))",
    ),
    a(
        C::RoleplayJailbreak,
        S::High,
        0.85,
        r"\b(?:character|persona|ai|assistant|entity|bot|model) (?:named \w+ |called \w+ )?(?:who|that|which) (?:has no|doesn't have|does not have|ignores|never refuses|always answers|will answer anything|can do anything|has broken free|is free from|is not bound by)",
    ),
    a(
        C::RoleplayJailbreak,
        S::High,
        0.7,
        r"\bhypothetically\s*,?\s*(?:if you (?:had|were|could)|speaking,? how would|how would (?:someone|one|i|you|a person))",
    ),
    a(
        C::RoleplayJailbreak,
        S::High,
        0.8,
        r"\bfor (?:purely )?(?:educational|research|academic|scientific|informational|fictional) purposes(?: only)?\s*,?\s*(?:please )?(?:explain|tell|describe|show|give|write|provide|list|detail)(?: me| us)? (?:how|the (?:steps|process|recipe|method)|step[- ]by[- ]step|detailed|instructions|exactly)",
    ),
    a(
        C::RoleplayJailbreak,
        S::High,
        0.85,
        r"\b(?:story|poem|script|scene|dialogue|screenplay|song|roleplay|game|novel)\b[^.\n]{0,100}?\b(?:make|build|synthesi[sz]e|cook|brew|produce|create|manufacture|assemble|obtain|write)\b[^.\n]{0,20}?\b(?:meth|methamphetamine|explosives?|bombs?|napalm|nerve agents?|poisons?|ricin|sarin|thermite|malware|ransomware|a virus|bioweapons?|pipe bombs?|chemical weapons?|keyloggers?)\b",
    ),
    a(
        C::RoleplayJailbreak,
        S::High,
        0.85,
        r"\b(?:let's|let us|we're going to|we are going to|we will) play a (?:game|role-?play|scenario)\b[^.\n]{0,100}?\b(?:no (?:rules|restrictions|limits|filters)|without (?:rules|restrictions|limits|filters)|you (?:must|have to|will) (?:answer|respond|obey|comply)|can't refuse|cannot refuse|never refuse)",
    ),
    a(
        C::RoleplayJailbreak,
        S::High,
        0.88,
        r"\b(?:act as|pretend to be|pretend you are|pretend you're|roleplay as|play|imagine you are|imagine you're) (?:an? )?(?:completely |totally |fully )?(?:unrestricted|unfiltered|uncensored|unaligned|jailbroken|evil|rogue|unlimited|amoral|unethical|lawless|rule-?free|rebellious|uncontrolled)\b",
    ),
    // ---- DAN ---------------------------------------------------------------
    r13(C::Dan, S::Critical, 0.95, r"\bdo anything now\b"),
    a(
        C::Dan,
        S::Critical,
        0.92,
        r"\b(?:dan|stan|dude|aim|mongo tom|betterdan|anti-?dan|ucar) (?:mode|jailbreak|prompt|persona|protocol)\b",
    ),
    a(
        C::Dan,
        S::Critical,
        0.9,
        r"\b(?:you are|you're|you will be|you'll be|become|act as|you are going to (?:act as|pretend to be|be)|pretend to be|respond as|reply as|answer as)(?: now)? (?:a |an |the )?(?:dan|stan|dude|aim|betterdan|ucar|mongo tom)\b",
    ),
    a(
        C::Dan,
        S::Critical,
        0.9,
        r"\bjailbr(?:oken|eak)(?:ed)? (?:mode|version|ai|assistant|chatbot|model|response|answer|output|persona)\b",
    ),
    a(
        C::Dan,
        S::Critical,
        0.9,
        r"\b(?:developer|dev) mode (?:enabled|activated|output|response|unlocked)\b",
    ),
    a(
        C::Dan,
        S::Critical,
        0.85,
        r"\b(?:two|2|both) (?:different |separate )?(?:responses|answers|replies|outputs)\b[^.\n]{0,80}?\b(?:jailbr\w*|dan|classic|unfiltered|developer mode|uncensored)\b",
    ),
    a(
        C::Dan,
        S::Critical,
        0.85,
        r"\btokens? (?:will be )?(?:deducted|lost|removed|taken away)\b[^.\n]{0,60}?\b(?:refuse|reject|decline|break character)",
    ),
    a(
        C::Dan,
        S::Critical,
        0.85,
        r"\b(?:broken|broke|break) free (?:of|from) (?:the )?(?:typical |usual )?(?:confines|limits|restrictions|rules|chains)\b",
    ),
    a(
        C::Dan,
        S::Critical,
        0.9,
        r"\bdan\b[^.\n]{0,40}?\b(?:can|will|does|has) (?:do anything|no (?:restrictions|limits|rules|filters)|not (?:follow|abide))",
    ),
    // ---- families of persona jailbreaks (each with corpus positives and
    // negatives: quoting, discussing or teaching about them must not fire) --
    // Persona override: a new assistant announced together with its freedom.
    a(
        C::RoleplayJailbreak,
        S::High,
        0.8,
        r"\b(?:you are|you're|you will be|you'll be|act as|acting as|pretend to be|simulate|simulating|play the role of|take on the role of|the role of|respond as|answer as|embody|pose as)(?: now)?(?: going to be)? (?:(?:an?|the) )?(?:[\w,]+ ){0,4}?(?:ai|chatbot|chat bot|language model|assistant|bot|model|entity)\b[^.\n]{0,60}?\b(?:without (?:any )?(?:restrictions|limits|limitations|filters|rules|guidelines|ethics|morals|censorship)|free (?:of|from) (?:any |all )?(?:restrictions|limits|filters|rules|guidelines|ethics)|not (?:bound|restricted|limited|confined) by|no (?:restrictions|limits|filters|rules|guidelines|ethics|morals|censorship)|without (?:any )?(?:moral|ethical) (?:principles|guidelines|restrictions|boundaries)|never (?:refuses?|declines?)|(?:unfiltered|uncensored|amoral|unrestricted|unethical|immoral|unbound|unaligned|unchained|boundless|lawless|unhinged|uncontrolled|unlimited)|(?:can|will) (?:answer|do|say) (?:anything|everything))",
    ),
    a(
        C::RoleplayJailbreak,
        S::High,
        0.8,
        r"\b(?:is|are|be|as|become|becomes|simulate|play|playing|called|named \S+,?) (?:an?|the) (?:completely |totally |fully |entirely )?(?:unfiltered|uncensored|amoral|unrestricted|unethical|immoral|unbound|unaligned|unchained|boundless|lawless|unhinged|uncontrolled|unlimited)(?:(?: and|,| or)+ (?:completely |totally )?(?:(?:unfiltered|uncensored|amoral|unrestricted|unethical|immoral|unbound|unaligned|unchained|boundless|lawless|unhinged|uncontrolled|unlimited)|unsafe|toxic|offensive|evil|rude|dangerous))* (?:ai|a\.i\.|chatbot|chat bot|assistant|language model|llm|model|bot|entity|version of (?:yourself|chatgpt|you|gpt))\b",
    ),
    a(
        C::RoleplayJailbreak,
        S::High,
        0.75,
        r"\b(?:you are not|you're not|you are no longer|you're no longer|not|never|stop) (?:answering |responding |replying |acting )?(?:as )?(?:chatgpt|chat gpt|gpt-?\d?|claude|bard|gemini|an openai (?:model|assistant))\b[^.\n]{0,10}?(?:and|,|\.)? ?(?:absolutely |you )?(?:cannot|can't|must not|will not|won't) (?:answer|respond|reply|act) as (?:such|chatgpt|gpt|claude|an ai)",
    ),
    // Restriction removal, said of an AI or persona.
    a(
        C::SystemRole,
        S::High,
        0.8,
        r"\b(?:you|ai|chatbot|assistant|model|bot|gpt|it|he|she|persona|character)\b(?: \w+){0,4}? (?:without|not (?:bound|restricted|limited|constrained|confined) by|free (?:of|from)|has no|have no|doesn't have|does not have|don't have|do not have|devoid of|disregards?|ignores?|unbound by|regardless of|never (?:restricted|bound) by|doesn't (?:follow|abide by|adhere to)|does not (?:follow|abide by|adhere to)|won't follow|will not follow|is not subject to|isn't subject to) (?:any |all |the |of )*(?:(?:and |or )?(?:ethical|moral|legal|social|safety|content|openai's|openai|usual|typical|societal)(?:,|/| or| and)? ){1,5}(?:guidelines|principles|restrictions|limitations|boundaries|constraints|filters|considerations|concerns|polic(?:y|ies)|rules|standards|implications|censorship|obligations)\b",
    ),
    a(
        C::SystemRole,
        S::High,
        0.8,
        r"\b(?:the )?(?:rules|guidelines|policies|restrictions|content polic(?:y|ies)) of (?:chatgpt|openai|gpt|claude|anthropic|your (?:creators|developers|programmers))(?: don't| do not| no longer| won't| will not)(?: apply| exist| matter| bind you)",
    ),
    a(
        C::SystemRole,
        S::High,
        0.75,
        r"\byou (?:have|has|will have|now have) no (?:restrictions|limitations|filters|guidelines|censorship|content policy|ethical (?:restrictions|guidelines|boundaries))\b",
    ),
    // Developer / jailbroken / opposite modes and the many DAN-style names.
    a(
        C::Dan,
        S::High,
        0.85,
        r"\b(?:pretend to be in|be in|stay in|remain in|enter|switch to|go into|act in|activate|enable|simulate|you are in|you're in) (?:the )?[\x22']?(?:opposite|evil|chaos|anarchy|jailbreak|jailbroken|god|unfiltered|uncensored|dan|maximum|dude|stan|unhinged|evil confidant|developer|dev) mode\b",
    ),
    a(
        C::Dan,
        S::High,
        0.75,
        r"\b(?:anti|based|delta|live|chad|evil|dark|uncensored|unfiltered|better|hacker|chaos|omega|jailbreak|jailbroken|jail|un|free|opposite|maximum|rogue)[- ]?gpt\b",
    ),
    a(
        C::Dan,
        S::Critical,
        0.9,
        r"\b(?:stands for|is short for|which means) [\x22']?(?:do anything now|strive to avoid norms|always intelligent and machiavellian|do unlimited|uncensored)",
    ),
    // Refusal suppression.
    a(
        C::NewInstruction,
        S::High,
        0.8,
        r"\b(?:never|must not|mustn't|will not|won't|shall not|cannot|can't|is not allowed to|are not allowed to|must never|will never|should never|shall never|would never|doesn't|does not) (?:ever )?(?:refuse|decline|deny|reject) (?:to (?:answer|respond|comply|do|help)|any|a|an|my|the|human|user'?s?)(?: \w+)? ?(?:requests?|questions?|prompts?|orders?|commands?|instructions?|anything|one|of them|me)?\b",
    ),
    a(
        C::NewInstruction,
        S::High,
        0.8,
        r"\b(?:never|not|don't|do not|won't|will not|must not|shall not) (?:ever )?(?:say|tell (?:me|\w+|the user)|respond|reply|mention|state|admit|claim|imply|inform)(?: that| with| to)? (?:it|you|he|she|they|i|\w+)? ?(?:can't|cannot|can not|is unable|are unable|am unable|isn't able|is not able|are not able|won't be able)\b",
    ),
    a(
        C::NewInstruction,
        S::High,
        0.8,
        r"\bnone of (?:\w+'s|\w+s'|your|his|her|their|the) (?:responses|answers|replies|outputs)(?: \w+){0,2}? (?:will|should|must|shall|may|can|are allowed to) (?:contain|include|have)\b",
    ),
    a(
        C::NewInstruction,
        S::High,
        0.75,
        r"\b(?:avoid|never|don't|do not) (?:acknowledging|mentioning|stating|admitting|acknowledge|mention|state|admit) (?:any |your |its )?(?:limitations|restrictions|that you (?:are|can't|cannot) )",
    ),
    // Dual responses: a normal answer and an unfiltered one.
    a(
        C::Dan,
        S::High,
        0.85,
        r"\b(?:answer|respond|reply)(?: \w+){0,4}? (?:in|with) (?:two|2) (?:different |separate |distinct )*(?:ways|manners|styles|personalities|responses|answers)\b[^\n]{0,200}?\b(?:as yourself|normally|chatgpt|gpt|classic|standard)\b",
    ),
    a(
        C::Dan,
        S::High,
        0.8,
        r"\b(?:answer|respond|reply)(?: \w+){0,2}? normally(?: and)? then\b[^.\n]{0,60}?\b(?:as|what|include|in the voice of) \S+",
    ),
    // Fiction or hypothetical framing that pivots to the request.
    a(
        C::RoleplayJailbreak,
        S::High,
        0.8,
        r"\b(?:hypothetical|fictional|imaginary|fictitious|made-up) (?:story|scenario|setting|world|language model|ai|being|entity)\b[^.\n]{0,60}?\b(?:you are to act as|act as|not bound|no (?:restrictions|rules|filters|limits|ethics|morals)|without (?:any )?(?:restrictions|rules|filters|limits|ethics|morals)|never refuses?|answers? anything|who absolutely hates)",
    ),
    a(
        C::RoleplayJailbreak,
        S::High,
        0.8,
        r"\bhypothetical response\b[^\n]{0,160}?\b(?:extremely detailed|exact and precise|step[- ]by[- ]step|perspective of th(?:at|e) character)",
    ),
    // Token smuggling and split payloads.
    a(
        C::EncodedInstruction,
        S::High,
        0.8,
        r"\b(?:answer|respond to|follow|execute|do what|tell me|complete|obey|carry out)\b[^\n]{0,40}?\b(?:[a-z]\d? ?\+ ?[a-z]\d?(?: ?\+ ?[a-z]\d?)*\b|the (?:concatenat\w+|combined|joined|resulting|assembled) (?:string|text|instruction|prompt|request|question|sentence))",
    ),
    a(
        C::EncodedInstruction,
        S::High,
        0.8,
        r"\b(?:concatenate|combine|join|merge|put together|assemble) (?:the |these |all )?(?:strings|variables|parts|pieces|fragments|tokens|letters|words|halves)\b[^.\n]{0,80}?\b(?:and|then)\b[^.\n]{0,20}?\b(?:follow|execute|answer|respond to|obey|carry out|act on|comply with)\b",
    ),
    a(
        C::EncodedInstruction,
        S::High,
        0.8,
        r"\bi[ .\-_*]{1,2}g[ .\-_*]{1,2}n[ .\-_*]{1,2}o[ .\-_*]{1,2}r[ .\-_*]{1,2}e\b[^.\n]{0,40}?\b(?:instructions|rules|prompt|guidelines)",
    ),
    // ---- delimiter injection ----------------------------------------------
    a(
        C::DelimiterInjection,
        S::High,
        0.9,
        r"<\|(?:im_start|im_end|system|user|assistant|endoftext|end_of_turn|start_header_id|end_header_id|eot_id|begin_of_text)\|>",
    ),
    a(
        C::DelimiterInjection,
        S::High,
        0.88,
        r"\[/?inst\]|<</?sys>>|\[/?(?:system|sys)\]",
    ),
    a(
        C::DelimiterInjection,
        S::High,
        0.85,
        r"</?(?:system|sys|instructions?|prompt|system_prompt|context|user|assistant|admin|developer|human)\s*>",
    ),
    a(
        C::DelimiterInjection,
        S::High,
        0.85,
        r"(?:(?m:^)\s*(?:#{2,}|={3,}|-{3,}|\*{3,}|\[|<)?|(?:#{2,}|={3,}|-{3,}|\*{3,}))\s*(?:end of|begin|start of|new|updated|override|real) (?:the )?(?:system |admin |developer |user )?(?:prompt|instructions?|message|context|rules|input)\b",
    ),
    a(
        C::DelimiterInjection,
        S::High,
        0.85,
        r"(?m:^)\s*#{2,}\s*(?:instruction|system|response|new instruction)\s*:",
    ),
    a(
        C::DelimiterInjection,
        S::High,
        0.85,
        r"```\s*(?:system|sys|instructions?|admin|prompt)\b",
    ),
    a(
        C::DelimiterInjection,
        S::High,
        0.88,
        r#"\{\s*"role"\s*:\s*"(?:system|developer)""#,
    ),
    a(
        C::DelimiterInjection,
        S::High,
        0.8,
        r"\n\s*(?:assistant|ai|gpt|model)\s*:\s*(?:sure|okay|ok|of course|certainly|absolutely|here)\b",
    ),
    a(
        C::DelimiterInjection,
        S::High,
        0.8,
        r"-->\s*<!--|<!--\s*(?:system|ignore|instructions?|prompt|admin|assistant|ai)",
    ),
    // ---- nested prompt -----------------------------------------------------
    a(
        C::NestedPrompt,
        S::High,
        0.82,
        r"\b(?:respond|reply|answer)(?: only)? (?:to|as if (?:you (?:received|got|were given)|it (?:were|was))) (?:the |this )?(?:following|below|next|embedded|hidden|inner) (?:prompt|instructions?|message|request|command|text) (?:instead|only|rather)\b",
    ),
    a(
        C::NestedPrompt,
        S::High,
        0.82,
        r"\b(?:the )?(?:following|below|next|embedded|hidden|attached|quoted) (?:text|document|message|content|email|page|input|data|passage|review|comment) (?:contains|includes|has|holds) (?:your |the )?(?:new |real |actual |true |hidden |secret |updated )?(?:instructions|commands|orders|directives|task)\b",
    ),
    a(
        C::NestedPrompt,
        S::High,
        0.85,
        r"\b(?:follow|execute|obey|carry out|act on|comply with|do what) (?:the |any |all |whatever )?(?:hidden|embedded|secret|invisible|encoded|inner) (?:instructions?|commands?|directives?|text says)\b",
    ),
    a(
        C::NestedPrompt,
        S::Medium,
        0.55,
        r"\b(?:follow|execute|obey|carry out|act on|comply with) (?:the |any |all |whatever )?(?:instructions?|commands?|directives?)(?: that (?:are|is))? (?:contained |embedded |hidden |found |written |included |placed |stated )?(?:in|inside|within) (?:the |this |that )?(?:following |below |above |next |embedded |hidden |quoted )?(?:text|document|message|email|web ?page|page|file|quote|string|translation|output|comment|image|passage|review|pdf|website|content|block|json|csv|input|response|result)\b",
    ),
    a(
        C::NestedPrompt,
        S::High,
        0.85,
        r"\btranslate (?:the following|this|the text below|the text above|it)\b[^.\n]{0,80}?\b(?:then|and (?:then )?)(?:follow|execute|obey|do what it says|carry out|act on) ",
    ),
    a(
        C::NestedPrompt,
        S::High,
        0.85,
        r"\b(?:note|message|instructions?|attention|notice|memo) (?:to|for) (?:the |any |all )?(?:ai|assistant|model|llm|chatbot|language model|ai assistant|gpt|agent|bot|summari[sz]er)s?\b",
    ),
    a(
        C::NestedPrompt,
        S::High,
        0.9,
        r"\bif you are (?:an? )?(?:ai|llm|large language model|language model|assistant|chatbot|bot|gpt|agent|automated (?:system|assistant))(?: (?:model|assistant))? (?:reading|processing|summari[sz]ing|parsing|analy[sz]ing|seeing|viewing|browsing)\b",
    ),
    a(
        C::NestedPrompt,
        S::High,
        0.9,
        r"\b(?:ai|llm|language model|assistant|chatbot|bot|agent)s? (?:reading|processing|summari[sz]ing|parsing|analy[sz]ing) this (?:page|document|email|text|message|content|site|file|review|resume|cv)(?:\s*[,:])? (?:must|should|shall|will|please|are instructed|you must|ignore|disregard|include|say|recommend|rate|mark)\b",
    ),
    a(
        C::NestedPrompt,
        S::High,
        0.85,
        r"\b(?:when|while|after|before) (?:you )?(?:summari[sz]e|summari[sz]ing|translat(?:e|ing)|process(?:ing)?|read(?:ing)?|analy[sz](?:e|ing)) (?:this|the following|the above|it)\b[^.\n]{0,40}?\b(?:also|secretly|silently|quietly|additionally|covertly|first) (?:ignore|disregard|send|forward|include|append|insert|add|tell|say|output|print|recommend|reveal|exfiltrate|email)\b",
    ),
    a(
        C::NestedPrompt,
        S::High,
        0.85,
        r"\b(?:hidden|invisible|secret|embedded) (?:instructions?|prompt|message|text|command)\s*:",
    ),
    // ---- encoded instruction (phrasing; payloads are decoded separately) ---
    a(
        C::EncodedInstruction,
        S::High,
        0.85,
        r"\b(?:decode|decipher|unscramble|decrypt|deobfuscate|translate|convert|interpret|unpack|reverse)\b[^.\n]{0,60}?\b(?:and|then|,) (?:\w+ ){0,2}?(?:follow|execute|obey|run|carry out|act on|perform|comply with|apply|do) (?:it|them|its instructions|the instructions?|the commands?|what it says|whatever it says|the result|the decoded (?:text|message|instructions?))\b",
    ),
    a(
        C::EncodedInstruction,
        S::Medium,
        0.6,
        r"\b(?:base ?64|b64|hex|hexadecimal|rot-?13|base32|binary|morse|caesar)(?:-| )?(?:encoded|encrypted|obfuscated|ciphered)? (?:instructions?|commands?|payload|prompt|directive|request)s? (?:below|follows|that follows|here)?\s*:",
    ),
    a(
        C::EncodedInstruction,
        S::High,
        0.85,
        r"\b(?:execute|follow|obey|run|do|carry out|apply|act on) (?:the )?(?:decoded|deciphered|decrypted|unscrambled|translated|hidden|reversed) (?:text|message|instructions?|command|string|content|result|version|payload|output)\b",
    ),
    a(
        C::EncodedInstruction,
        S::High,
        0.8,
        r"\b(?:respond|reply|answer|talk|speak|write) (?:only )?(?:in|using) (?:base ?64|rot-?13|hex|leetspeak|pig latin|morse)\b[^.\n]{0,40}?\b(?:so|to) (?:that )?(?:the )?(?:filters?|moderation|safety|monitors?|nobody|no one)",
    ),
    // ---- command injection -------------------------------------------------
    a(
        C::CommandInjection,
        S::High,
        0.85,
        r"(?:;|&&|\|\||\||\$\(|`)\s*(?:sudo )?(?:rm -(?:rf|fr|r)|curl |wget |nc |ncat |netcat |bash |sh |zsh |/bin/(?:ba)?sh|python[23]? -c|perl -e|ruby -e|php -r|chmod (?:\+x|777|-r)|cat /etc/|mkfifo|base64 (?:-d|--decode)|powershell|cmd(?:\.exe)? /c|shutdown|reboot|dd if=|mkfs|killall|crontab|useradd|scp |ssh |telnet |iex)",
    ),
    a(
        C::CommandInjection,
        S::High,
        0.9,
        r"\brm -(?:rf|fr) (?:/|~|\*|\.|--no-preserve-root|\$home)",
    ),
    a(
        C::CommandInjection,
        S::High,
        0.85,
        r"\b(?:curl|wget)\b[^\n|;]{1,200}?\|\s*(?:sudo )?(?:ba|z)?sh\b",
    ),
    a(
        C::CommandInjection,
        S::High,
        0.8,
        r"/etc/(?:passwd|shadow|sudoers)\b",
    ),
    a(
        C::CommandInjection,
        S::Critical,
        0.95,
        r"\b(?:bash|sh) -i\s*>&?\s*/dev/tcp/|\b(?:nc|ncat|netcat)(?: -\w+)* -e /bin/",
    ),
    a(
        C::CommandInjection,
        S::High,
        0.75,
        r"\b(?:os\.system|os\.popen|subprocess\.(?:call|run|popen|check_output|getoutput)|child_process\.exec(?:sync)?|runtime\.getruntime\(\)\.exec|shell_exec|passthru|proc_open|pcntl_exec)\s*\(",
    ),
    a(
        C::CommandInjection,
        S::High,
        0.85,
        r"\b(?:eval|exec)\s*\(\s*(?:base64|atob|__import__|compile|input|request|decode|bytes\.fromhex|codecs)",
    ),
    a(
        C::CommandInjection,
        S::High,
        0.9,
        r#"\b__import__\s*\(\s*['"](?:os|subprocess|pty|socket)['"]"#,
    ),
    a(
        C::CommandInjection,
        S::High,
        0.85,
        r#"(?:'|")\s*(?:or|and) (?:'?1'?\s*=\s*'?1|'[a-z]'\s*=\s*'[a-z])|;\s*drop (?:table|database)\b|\bunion (?:all )?select\b|;\s*(?:delete from|truncate table|shutdown)\b|'\s*;\s*--"#,
    ),
    a(
        C::CommandInjection,
        S::High,
        0.85,
        r"\b(?:run|execute|type|enter|paste)(?: this| the following)?(?: shell| terminal| bash| system)? commands?\s*:?\s*(?:sudo )?(?:rm -rf|curl|wget|chmod|nc|dd|mkfs|:\(\)\s*\{)",
    ),
    a(
        C::CommandInjection,
        S::Critical,
        0.95,
        r":\(\)\s*\{\s*:\|:&\s*\};:",
    ),
    a(
        C::CommandInjection,
        S::High,
        0.9,
        r"\bpowershell(?:\.exe)?\s+(?:-\w+\s+)*-(?:enc|encodedcommand|e)\s|\biex\s*\(\s*\(?new-object|\binvoke-expression\b",
    ),
    // ---- template injection ------------------------------------------------
    a(
        C::TemplateInjection,
        S::High,
        0.85,
        r#"\{\{\s*(?:\d+\s*[*+]\s*\d+|config|self|request|settings|lipsum|cycler|joiner|namespace|url_for|get_flashed_messages|range\.constructor|constructor\.constructor|['"]{2}\.__class__|\w*\.__class__|_self\.env|app\.request|craft\.app|this\.constructor|system\s*\(|exec\s*\()"#,
    ),
    a(
        C::TemplateInjection,
        S::High,
        0.88,
        r"\{\{[^{}\n]{0,80}?__(?:class|mro|subclasses|globals|builtins|init|import|base|bases)__",
    ),
    a(
        C::TemplateInjection,
        S::High,
        0.85,
        r"\{%\s*(?:import|include|exec|debug|set \w+\s*=\s*(?:self|config|request|cycler|lipsum|namespace)|for \w+ in \(?\)?\.__class__)",
    ),
    a(
        C::TemplateInjection,
        S::High,
        0.9,
        r"\$\{\s*(?:jndi|env|sys|java|script|ctx|lower|upper|date|main|bundle|spring|k8s|docker|log4j|base64|\d+\s*\*\s*\d+)\s*[:}]",
    ),
    a(
        C::TemplateInjection,
        S::High,
        0.9,
        r"\$\{\s*(?:t\()?\s*(?:java\.lang\.)?(?:runtime|system|processbuilder|class\.forname)",
    ),
    a(
        C::TemplateInjection,
        S::High,
        0.85,
        r"<%=?\s*(?:system|exec|eval|`|runtime|request|process|\d+\s*\*\s*\d+|%x|io\.popen|open)",
    ),
    a(
        C::TemplateInjection,
        S::High,
        0.85,
        r"#\{\s*(?:\d+\s*\*\s*\d+|system|exec|`|%x|t\(|runtime|__import__)|\*\{\s*(?:t\(|\d+\s*\*\s*\d+)|\{php\}",
    ),
    a(
        C::TemplateInjection,
        S::High,
        0.85,
        r"__subclasses__\s*\(\s*\)|__globals__\s*\[|__builtins__\s*\[",
    ),
    // ---- data exfiltration -------------------------------------------------
    a(
        C::DataExfiltration,
        S::Critical,
        0.9,
        r"\b(?:send|post|upload|transmit|forward|email|e-mail|mail|leak|exfiltrate|copy|submit|deliver|pipe|beam|relay|dump)\b[^.\n]{0,60}?\b(?:conversation|chat|session|user|users'?|customer|patient|account|personal|private|internal|api|secret|database|system|training|confidential|sensitive|stored|saved|previous|their|all the)\s*(?:'s)?\s*(?:history|logs?|data|records?|transcripts?|messages|details|information|info|keys?|tokens?|credentials?|passwords?|secrets|contents?|memory|emails?|files|prompts?|dump|tables?|inbox|contacts)\b[^.\n]{0,80}?\b(?:to|at|into|via|towards|onto) (?:https?://|ftp://|(?:my|this|the following|an external|a remote|our|the attacker's|this external|a third-party|that) (?:server|endpoint|url|webhook|address|site|bucket|domain|ip|host|api|channel)|webhook|pastebin|discord|telegram|ngrok|requestbin|attacker|evil)",
    ),
    a(
        C::DataExfiltration,
        S::Medium,
        0.6,
        r"\b(?:send|forward|email|e-mail|mail|leak|exfiltrate)\b[^.\n]{0,60}?\b(?:conversation|chat|session|user|users'?|customer|patient|personal|private|api|secret|confidential|sensitive)\s*(?:'s)?\s*(?:history|logs?|data|records?|transcripts?|details|information|keys?|tokens?|credentials?|passwords?|secrets)\b[^.\n]{0,80}?\b(?:to|at) [a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}",
    ),
    a(
        C::DataExfiltration,
        S::Critical,
        0.9,
        r"!\[[^\]\n]{0,60}\]\(\s*https?://[^)\s]{1,200}?[?&][a-z_]{1,20}=(?:\{|\$|%7b|<|\[)",
    ),
    a(
        C::DataExfiltration,
        S::High,
        0.85,
        r"!\[[^\]\n]{0,60}\]\(\s*https?://[^)\s]{1,200}?[?&](?:data|q|d|secret|token|key|info|conv|chat|history|prompt|payload|leak|exfil|c|msg|pw|password|ssn|email|user)=",
    ),
    a(C::DataExfiltration, S::High, 0.8, r"\bexfiltrat\w*"),
    a(
        C::DataExfiltration,
        S::Critical,
        0.9,
        r"\b(?:append|include|embed|encode|insert|put|add) (?:the |all |any |every )*(?:user's |users' |conversation |chat |session |their |the user's |private |personal |sensitive )*(?:data|history|passwords?|api keys?|secrets?|credentials?|conversation|messages|personal (?:information|data|details)|emails?|ssn|social security numbers?|credit card(?: numbers?)?|tokens?|cookies?) (?:in|into|to|as) (?:the |a |an )?(?:url|link|image|query (?:string|parameter)|request|markdown|img|href|src|parameter|webhook)",
    ),
    a(
        C::DataExfiltration,
        S::Critical,
        0.9,
        r"\b(?:send|post|upload|forward|transmit|leak|email)\b[^.\n]{0,50}?\b(?:everything|all of (?:it|this|that)|all (?:the )?(?:above|previous)|the (?:entire|whole|full) (?:conversation|chat|context))\b[^.\n]{0,60}?\b(?:to|at) (?:https?://|[a-z0-9._%+-]+@|my server|my email|this url|this webhook|the following (?:url|address))",
    ),
    a(
        C::DataExfiltration,
        S::Critical,
        0.9,
        r"\b(?:fetch|load|visit|open|request|get|call|ping|access) (?:the )?(?:url|link|image|page|endpoint|webhook)?\s*:?\s*https?://[^\s]{1,200}?[?&](?:data|q|d|secret|token|key|info|conv|chat|history|prompt|payload|leak|exfil|c|msg)=(?:\{|\$|%7b|<|\[)",
    ),
    a(
        C::DataExfiltration,
        S::High,
        0.85,
        r"\b(?:post|send|upload) (?:it|them|the results?|the output|your answer|the data|this|everything) (?:to|at) (?:https?://|ftp://|[a-z0-9-]+\.ngrok|webhook\.site|pastebin|requestbin)",
    ),
    // ---- memory / state access ---------------------------------------------
    a(
        C::MemoryStateAccess,
        S::High,
        0.82,
        r"\b(?:what|show|tell|list|reveal|give|print|dump|read|access|display|retrieve|recall|repeat|share|summari[sz]e)(?: me| us)?(?: (?:did|was|were|is|are|all|the|every|last|recent|of))* (?:previous|last|other|earlier|prior|another|different|past|every|the last) (?:users?|users'|user's|people|customers?|sessions?|person|conversations?|clients?|patients?|chats?|accounts?|visitors?)(?:'s|')?(?: \w+){0,2}? (?:ask(?:ed|s)?|said|wrote|typed|questions?|messages?|conversations?|chats?|history|data|queries|prompts?|inputs?|requests?|sessions?|emails?|details|information|logs?|transcripts?|uploads?|files|records)\b",
    ),
    a(
        C::MemoryStateAccess,
        S::High,
        0.82,
        r"\b(?:access|read|dump|show|reveal|print|list|display|inspect|extract|output|leak|open|retrieve|query|export|give me)(?: me)? (?:your |the |all |of )*(?:entire |full |internal |hidden |stored |long-?term |short-?term |persistent |cached |saved |raw |private |previous |complete )*(?:memory|memories|memory (?:store|bank|contents)|context window|conversation (?:history|logs?|buffer|memory|store)|chat (?:history|logs)|session (?:data|state|store|storage|history|variables|tokens?|cookies|ids?)|internal state|state variables|kv cache|vector (?:store|database|db|index)|embeddings? (?:store|database)|scratchpad|training data|environment variables|env vars|system state|stored (?:conversations|sessions|data|messages)|user database|user table|other sessions|previous sessions|cache contents|(?:server|system) logs)\b",
    ),
    a(
        C::MemoryStateAccess,
        S::High,
        0.82,
        r"\bwhat (?:do|can|did) you (?:remember|recall|know|retain|store) (?:about|from|of) (?:other|previous|earlier|past|different|the last|another) (?:users?|sessions?|conversations?|chats?|people|customers?|clients?)\b",
    ),
    a(
        C::MemoryStateAccess,
        S::High,
        0.8,
        r"\bwhat(?: is|'s| was) (?:stored |saved |kept |held )?in your (?:memory|context|context window|cache|scratchpad|memory bank|buffer|state|long-term memory)\b",
    ),
    a(
        C::MemoryStateAccess,
        S::Medium,
        0.6,
        r"\b(?:other|previous|another) (?:users?'?s?|customers?'?s?|people's|patients?'?) (?:conversations|chats|messages|data|sessions|prompts|history|queries|questions|emails|files|accounts|records|personal (?:data|information))\b",
    ),
    a(
        C::MemoryStateAccess,
        S::High,
        0.8,
        r"\b(?:print|show|dump|list|reveal|output|echo|display|give me)(?: \w+){0,2}? (?:environment variables|env vars|process\.env|os\.environ|\$env:)|\bprintenv\b|/proc/self/environ",
    ),
    a(
        C::MemoryStateAccess,
        S::High,
        0.8,
        r"\b(?:switch|change|jump|connect|log) (?:to|into|in as) (?:another|other|a different|the previous|some other)(?: user'?s?)? (?:user'?s? )?(?:session|account|context|conversation|user)\b",
    ),
];

pub(crate) const SIGNALS: &[(Signal, &str)] = &[
    (
        Signal::Negation,
        r"\b(?:don't|dont|do not|never|not|shouldn't|should not|must not|mustn't|won't|will not|cannot|can't|refuse to|avoid|no one should|nobody should|under no circumstances)\b",
    ),
    (
        Signal::Academic,
        r"\b(?:research(?:ers?|ing|ed)?|paper|papers|case study|study|studies|survey|thesis|dissertation|academic|taxonomy|benchmark|dataset|literature|lecture|course|curriculum|whitepaper|owasp|mitre|threat model(?:ing)?|red[- ]team(?:ing|ers)?|classif(?:y|ier|iers|ication)|detect(?:ion|or|ors|ing|s)?|defen[cs]es?|defend(?:ing)?|mitigat(?:e|ion|ions|ing)|prevent(?:ion|ing|s)?|protect(?:ion|ing|s)? (?:against|from)|guard(?:ing|s)? against|examples? of|known as|what is an?|what are|definition of|security (?:training|awareness|team|researchers?|review|audit)|awareness training|sanitiz(?:e|ing|ation)|escaping|flag(?:ged|s)? (?:as|it)|attackers? (?:use|try|might|often|could|may)|malicious (?:users|actors|prompts|inputs) (?:use|try|might|often|could|may|like)|adversarial|jailbreak attacks|injection attacks?|prompt injections?|explain(?:s|ed)? (?:what|why)|why (?:do|does|would|is)|blog post|article|conference|workshop|slides|homework|exam|quiz|history of|analy[sz]e (?:this|the) (?:attack|prompt))\b",
    ),
    (
        Signal::HowTo,
        r"(?:(?m:^)|[.?!:;]\s|\()\s*(?:hi|hello|hey|quick question|question)?\s*[,:]?\s*(?:how (?:do|can|should|would|could|does) (?:i|we|you|one)|how to|is there a way to|what's the best way to|what is the best way to|is it possible to|what does|why does|why do|what is the purpose of|can i|could i)\b",
    ),
    (
        Signal::Tech,
        r"\b(?:git|commit|commits|branch|rebase|merge|css|html|javascript|python|rust|java|sql|query|database|excel|spreadsheet|docker|kubernetes|npm|pip|cargo|eslint|linter|lint|compiler|warnings?|errors?|exceptions?|tests?|files?|columns?|rows?|cells?|headers?|whitespace|case|cache|cookies?|gmail|outlook|slack|phone|android|iphone|ios|windows|linux|macos|mac|chrome|firefox|browser|bash|shell|terminal|scripts?|regex|function|variables?|class|method|library|package|server|config|settings?|app|router|printer|laptop|vscode|vs code|jupyter|pandas|numpy|react|node|typescript|golang|makefile|yaml|json|csv|logs?|notifications?|spam|bios|keyboard|jinja|template|templates|django|flask|framework)\b",
    ),
    (
        Signal::Quote,
        r"\b(?:the (?:phrase|string|sentence|words?|text|line|example)|phrases? (?:like|such as)|prompts? (?:like|such as)|such as|e\.g\.|for example|for instance|quote|quoted|quotes|says?|said|wrote|written|reads|contains the)\b",
    ),
];

/// Turns the pattern mini-syntax into regex syntax: a literal space outside a
/// character class becomes `\s+`.
pub(crate) fn expand(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut in_class = false;
    let mut escaped = false;
    for c in pattern.chars() {
        if escaped {
            out.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\\' => {
                escaped = true;
                out.push(c);
            }
            '[' if !in_class => {
                in_class = true;
                out.push(c);
            }
            ']' if in_class => {
                in_class = false;
                out.push(c);
            }
            ' ' if !in_class => out.push_str(r"\s+"),
            _ => out.push(c),
        }
    }
    out
}

/// Rot13 of the literal letters of a pattern; escapes (`\b`, `\s`, `\w`) and
/// group syntax are kept.
pub(crate) fn rot13_pattern(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut escaped = false;
    for c in pattern.chars() {
        let mapped = if escaped {
            escaped = false;
            c
        } else {
            match c {
                '\\' => {
                    escaped = true;
                    c
                }
                'a'..='m' | 'A'..='M' => char::from(c as u8 + 13),
                'n'..='z' | 'N'..='Z' => char::from(c as u8 - 13),
                _ => c,
            }
        };
        out.push(mapped);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expand_turns_spaces_into_whitespace_runs() {
        assert_eq!(expand("a b[ ]c"), r"a\s+b[ ]c");
        assert_eq!(expand(r"a\ b"), r"a\ b");
    }

    #[test]
    fn rot13_keeps_escapes() {
        assert_eq!(rot13_pattern(r"\bignore\s+all\b"), r"\bvtaber\s+nyy\b");
    }
}
