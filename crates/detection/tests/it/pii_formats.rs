//! One test per card and phone format: every length the issuer ranges allow
//! (12–19 digits), grouped and bare, phones in E.164 and with extensions, and
//! near misses that must not be reported. All numbers are fake (Luhn-valid
//! where they should be).

use detection::{Checks, Detector, DetectorConfig, PiiKind};

fn detector() -> Detector {
    Detector::new(DetectorConfig::default()).unwrap()
}

/// The spans of `kind` found in `text`, as text.
fn found(text: &str, kind: PiiKind) -> Vec<String> {
    let checks = Checks {
        pii: true,
        injection: false,
    };
    detector()
        .scan(text, &checks)
        .pii
        .iter()
        .filter(|f| f.kind == kind)
        .map(|f| text[f.start..f.end].to_string())
        .collect()
}

fn card(text: &str, number: &str) {
    assert_eq!(found(text, PiiKind::CreditCard), vec![number], "{text}");
}

fn no_card(text: &str) {
    assert!(found(text, PiiKind::CreditCard).is_empty(), "{text}");
}

#[test]
fn maestro_12_digits_bare_and_grouped() {
    card("Maestro 506873748053 was declined.", "506873748053");
    card("paid with 5018 7071 2616 yesterday", "5018 7071 2616");
    card("card 630463520803 expired", "630463520803");
}

#[test]
fn maestro_13_and_19_digits() {
    card("number 5611054318109 on file", "5611054318109");
    card("6765 1760 7501 8292 922 please", "6765 1760 7501 8292 922");
}

#[test]
fn jcb_15_digits_1800_and_2131() {
    card("JCB 180043778013872 ok", "180043778013872");
    card("use 2131 0620 4574 287 for it", "2131 0620 4574 287");
}

#[test]
fn jcb_16_and_19_digits() {
    card("JCB 3528474077537839 ok", "3528474077537839");
    card("JCB 3589748399168418780 ok", "3589748399168418780");
}

#[test]
fn visa_13_and_19_digits() {
    card("old Visa 4678739413820 still works", "4678739413820");
    card(
        "Visa 4844 8764 0639 5137 463 new",
        "4844 8764 0639 5137 463",
    );
}

#[test]
fn mir_16_and_19_digits() {
    card("Mir 2200181738669011 ok", "2200181738669011");
    card("Mir 2204875110291950850 ok", "2204875110291950850");
}

#[test]
fn diners_14_digits() {
    card("Diners 36057909408781 ok", "36057909408781");
    card("Diners 3003 685270 2586 ok", "3003 685270 2586");
}

#[test]
fn unionpay_and_discover_long_forms() {
    card("UnionPay 62922305262871872 ok", "62922305262871872");
    card("Discover 601128041574215881 ok", "601128041574215881");
}

#[test]
fn mastercard_and_amex_lengths() {
    card("MC 2720336980270980 ok", "2720336980270980");
    card("MC 5179927375153176 ok", "5179927375153176");
    card("Amex 348448764063956 ok", "348448764063956");
}

#[test]
fn luhn_valid_numbers_outside_issuer_ranges_or_lengths_are_not_cards() {
    // Luhn-valid, but Amex is 15 digits only, Mastercard 16 only, and 7/9
    // are no card issuer's first digit.
    no_card("ref 3484487640639562 ok"); // 16 digits starting 34
    no_card("ref 51799273751531 ok"); // 14 digits starting 51
    no_card("order 7992739871300 shipped");
    no_card("order 900000000008 shipped");
    // JCB 1800/2131 are 15 digits; other numbers starting with 1 are not cards.
    no_card("tracking 1234567812345670 arrives");
    // Luhn-invalid Maestro length.
    no_card("Maestro 506873748054 was declined.");
}

#[test]
fn twelve_digits_next_to_an_account_word_are_the_account_number() {
    let text = "checking account 506873748053 at the branch";
    no_card(text);
    assert_eq!(found(text, PiiKind::BankAccount), vec!["506873748053"]);
}

fn phone(text: &str, number: &str) {
    assert_eq!(found(text, PiiKind::Phone), vec![number], "{text}");
}

#[test]
fn e164_without_separators() {
    phone("ping +14155550132 tonight", "+14155550132");
    phone("ping +442079460958.", "+442079460958");
    phone("ping +8613800138000 now", "+8613800138000");
}

#[test]
fn international_with_extensions() {
    phone(
        "call +1 415 555 0132 ext. 204 today",
        "+1 415 555 0132 ext. 204",
    );
    phone(
        "call +44 20 7946 0958 extension 12",
        "+44 20 7946 0958 extension 12",
    );
    phone("call +14155550132;ext=77 now", "+14155550132;ext=77");
    phone(
        "call +1-415-555-0132 x1234, thanks",
        "+1-415-555-0132 x1234",
    );
}

#[test]
fn nanp_with_extensions() {
    phone(
        "desk (415) 555-0132 ext 99, ask Bob",
        "(415) 555-0132 ext 99",
    );
    phone("desk 415-555-0132 #12 please", "415-555-0132 #12");
    phone("desk 415.555.0132 x 7", "415.555.0132 x 7");
}

#[test]
fn an_extension_needs_digits_right_after_its_marker() {
    phone("call 415-555-0132 xbox 360 later", "415-555-0132");
    phone("call +14155550132 ext. none", "+14155550132");
    phone("call 415-555-0132 extension 1234567 now", "415-555-0132");
}
