//! The protocol's parsing and validation, case by case.

use super::*;

fn limits() -> TextLimits {
    TextLimits::default()
}

#[test]
fn plain_text_is_a_say() {
    assert_eq!(
        parse("  hello there ", &limits()),
        Ok(Command::Say {
            room: None,
            text: "hello there".into(),
            nonce: None
        })
    );
    // Only what parses as a JSON object is a command.
    for text in [
        "{curly} braces at the start",
        r#"{"type":"say","text":"#,
        "{",
        "[1, 2]",
        r#""a JSON string""#,
        "42",
    ] {
        assert_eq!(
            parse(text, &limits()),
            Ok(Command::Say {
                room: None,
                text: text.into(),
                nonce: None
            }),
            "{text}"
        );
    }
}

#[test]
fn hello_say_rename() {
    assert_eq!(
        parse(
            r#"{"type":"hello","name":" alice ","resume":41}"#,
            &limits()
        ),
        Ok(Command::Hello(Hello {
            name: Some("alice".into()),
            resume: Some(41),
            ..Hello::default()
        }))
    );
    assert_eq!(
        parse(r#"{"type":"say","text":"hi","nonce":"c1-17"}"#, &limits()),
        Ok(Command::Say {
            room: None,
            text: "hi".into(),
            nonce: Some("c1-17".into())
        })
    );
    assert_eq!(
        parse(r#"{"type":"rename","name":"bob"}"#, &limits()),
        Ok(Command::Rename { name: "bob".into() })
    );
}

#[test]
fn bad_requests_have_codes() {
    let code = |s: &str| parse(s, &limits()).unwrap_err().code;
    assert_eq!(code(r#"{"type":"shout"}"#), ErrorCode::UnknownType);
    assert_eq!(code(r#"{"text":"hi"}"#), ErrorCode::BadRequest);
    assert_eq!(code(r#"{"type":"say","text":"   "}"#), ErrorCode::EmptyText);
    assert_eq!(
        code(&format!(
            r#"{{"type":"say","text":"{}"}}"#,
            "x".repeat(4001)
        )),
        ErrorCode::TextTooLong
    );
    assert_eq!(
        code(r#"{"type":"rename","name":"a\u0007b"}"#),
        ErrorCode::BadName
    );
    assert_eq!(
        code(&format!(
            r#"{{"type":"rename","name":"{}"}}"#,
            "n".repeat(33)
        )),
        ErrorCode::BadName
    );
    assert_eq!(
        code(r#"{"type":"hello","resume":-1}"#),
        ErrorCode::BadRequest
    );
}

#[test]
fn rooms_dms_typing_and_the_new_hello() {
    let rust = RoomName::parse("rust").unwrap();
    assert_eq!(
        parse(r#"{"type":"join","room":" Rust","resume":7}"#, &limits()),
        Ok(Command::Join {
            room: rust.clone(),
            resume: Some(7)
        })
    );
    assert_eq!(
        parse(r#"{"type":"leave","room":"rust"}"#, &limits()),
        Ok(Command::Leave { room: rust.clone() })
    );
    assert_eq!(parse(r#"{"type":"rooms"}"#, &limits()), Ok(Command::Rooms));
    assert_eq!(
        parse(r#"{"type":"say","room":"rust","text":"hi"}"#, &limits()),
        Ok(Command::Say {
            room: Some(rust.clone()),
            text: "hi".into(),
            nonce: None
        })
    );
    assert_eq!(
        parse(
            r#"{"type":"dm","to":" bob ","text":" hi ","nonce":"c2"}"#,
            &limits()
        ),
        Ok(Command::Dm {
            to: "bob".into(),
            text: "hi".into(),
            nonce: Some("c2".into())
        })
    );
    assert_eq!(
        parse(r#"{"type":"typing","to":"bob"}"#, &limits()),
        Ok(Command::Typing(TypingIn::Dm("bob".into())))
    );
    assert_eq!(
        parse(r#"{"type":"typing","room":"rust"}"#, &limits()),
        Ok(Command::Typing(TypingIn::Room(rust.clone())))
    );
    let Ok(Command::Hello(hello)) = parse(
        r#"{"type":"hello","name":"alice","session":"abc","rooms":{"lobby":41,"rust":null}}"#,
        &limits(),
    ) else {
        panic!("not a hello");
    };
    assert_eq!(hello.session.as_deref(), Some("abc"));
    let mut rooms = hello.rooms.unwrap();
    rooms.sort();
    assert_eq!(rooms, vec![(RoomName::lobby(), Some(41)), (rust, None)]);
}

#[test]
fn bad_rooms_and_targets_have_codes() {
    let code = |s: &str| parse(s, &limits()).unwrap_err().code;
    assert_eq!(
        code(r#"{"type":"join","room":"no way"}"#),
        ErrorCode::BadRoom
    );
    assert_eq!(code(r#"{"type":"join","room":7}"#), ErrorCode::BadRoom);
    assert_eq!(code(r#"{"type":"join"}"#), ErrorCode::BadRequest);
    assert_eq!(
        code(r#"{"type":"say","room":"-x","text":"hi"}"#),
        ErrorCode::BadRoom
    );
    assert_eq!(
        code(r#"{"type":"hello","rooms":{"A B":1}}"#),
        ErrorCode::BadRoom
    );
    assert_eq!(
        code(r#"{"type":"hello","rooms":["lobby"]}"#),
        ErrorCode::BadRequest
    );
    assert_eq!(code(r#"{"type":"dm","text":"hi"}"#), ErrorCode::BadRequest);
    assert_eq!(code(r#"{"type":"typing"}"#), ErrorCode::BadRequest);
    let err = parse(
        r#"{"type":"dm","to":"","text":"hi","nonce":"n"}"#,
        &limits(),
    )
    .unwrap_err();
    assert_eq!(
        (err.code, err.nonce.as_deref()),
        (ErrorCode::BadName, Some("n"))
    );
}

#[test]
fn errors_about_a_say_carry_its_nonce() {
    let err = parse(r#"{"type":"say","text":"","nonce":"n1"}"#, &limits()).unwrap_err();
    assert_eq!(err.nonce.as_deref(), Some("n1"));
    assert!(err.to_json().contains(r#""nonce":"n1""#));
}

#[test]
fn limits_count_characters_not_bytes() {
    assert!(check_text(&"é".repeat(4000), &limits()).is_ok());
    assert!(check_name(&"ü".repeat(32), &limits()).is_ok());
}
