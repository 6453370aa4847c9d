//! The WIT reference in `docs/wit-reference.md`, generated from `wit/` with
//! `wit-parser` (the parser wasmtime and wit-bindgen use), so the document
//! cannot drift from the interfaces: a test compares the two.

use std::fmt::Write;
use std::path::Path;

use wit_parser::{
    Docs, Function, FunctionKind, Handle, InterfaceId, Resolve, Stability, Type, TypeDefKind,
    TypeId, TypeOwner, WorldItem, WorldKey,
};

/// The Markdown reference of the WIT package in `dir`.
pub fn reference(dir: &Path) -> anyhow::Result<String> {
    let mut resolve = Resolve::new();
    let (package, _) = resolve.push_dir(dir)?;
    let name = resolve.packages[package].name.to_string();
    let mut out = String::new();
    let _ = writeln!(out, "# WIT reference: `{name}`\n");
    out.push_str(
        "Generated from [`wit/`](../wit) by `tests/src/wit_doc.rs`; do not edit.\n\
         After a change to the WIT, `TRELLIS_BLESS=1 cargo test -p trellis-tests --test\n\
         integration wit_reference` rewrites it (the test fails while it is out of step).\n\
         The [plugin guide](plugin-guide.md) says how the SDK and the other languages\n\
         present these.\n",
    );
    for (_, world) in &resolve.packages[package].worlds {
        let world = &resolve.worlds[*world];
        let _ = writeln!(out, "\n## World `{}`\n", world.name);
        docs(&mut out, &world.docs);
        for (what, items) in [("Imports", &world.imports), ("Exports", &world.exports)] {
            let names: Vec<String> = items
                .iter()
                .filter_map(|(key, item)| match item {
                    WorldItem::Interface { id, .. } => Some(format!(
                        "[`{}`](#interface-{})",
                        resolve.name_world_key(key),
                        interface_name(&resolve, key, *id)
                    )),
                    _ => None,
                })
                .collect();
            if !names.is_empty() {
                let _ = writeln!(out, "- {what}: {}", names.join(", "));
            }
        }
    }
    for (id, interface) in &resolve.packages[package].interfaces {
        let interface_id = *interface;
        let interface = &resolve.interfaces[interface_id];
        let _ = writeln!(out, "\n## Interface `{id}`\n");
        since(&mut out, &interface.stability);
        docs(&mut out, &interface.docs);
        for (name, ty) in &interface.types {
            typedef(&mut out, &resolve, interface_id, name, *ty);
        }
        let free: Vec<&Function> = interface
            .functions
            .values()
            .filter(|f| matches!(f.kind, FunctionKind::Freestanding))
            .collect();
        if !free.is_empty() {
            out.push_str("\n### Functions\n");
            for function in free {
                let _ = writeln!(out, "\n#### `{}`\n", function.name);
                let _ = writeln!(out, "```wit\n{}\n```\n", signature(&resolve, function));
                since(&mut out, &function.stability);
                docs(&mut out, &function.docs);
            }
        }
    }
    // Sections end with a blank line and start with one: keep one.
    while out.contains("\n\n\n") {
        out = out.replace("\n\n\n", "\n\n");
    }
    Ok(format!("{}\n", out.trim_end()))
}

fn interface_name<'a>(resolve: &'a Resolve, key: &'a WorldKey, id: InterfaceId) -> &'a str {
    match key {
        WorldKey::Name(name) => name,
        WorldKey::Interface(_) => resolve.interfaces[id].name.as_deref().unwrap_or("?"),
    }
}

fn typedef(out: &mut String, resolve: &Resolve, interface: InterfaceId, name: &str, id: TypeId) {
    let def = &resolve.types[id];
    // `use`d types are documented where they are defined.
    if let TypeDefKind::Type(Type::Id(other)) = def.kind
        && resolve.types[other].owner != TypeOwner::Interface(interface)
    {
        return;
    }
    let kind = match &def.kind {
        TypeDefKind::Record(_) => "record",
        TypeDefKind::Variant(_) => "variant",
        TypeDefKind::Enum(_) => "enum",
        TypeDefKind::Flags(_) => "flags",
        TypeDefKind::Resource => "resource",
        _ => "type",
    };
    let _ = writeln!(out, "\n### {kind} `{name}`\n");
    since(out, &def.stability);
    docs(out, &def.docs);
    match &def.kind {
        TypeDefKind::Record(record) => {
            out.push_str("| field | type | |\n|---|---|---|\n");
            for field in &record.fields {
                let _ = writeln!(
                    out,
                    "| `{}` | `{}` | {} |",
                    field.name,
                    type_name(resolve, &field.ty),
                    cell(&field.docs)
                );
            }
        }
        TypeDefKind::Variant(variant) => {
            out.push_str("| case | payload | |\n|---|---|---|\n");
            for case in &variant.cases {
                let payload = case
                    .ty
                    .map(|t| format!("`{}`", type_name(resolve, &t)))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "| `{}` | {payload} | {} |",
                    case.name,
                    cell(&case.docs)
                );
            }
        }
        TypeDefKind::Enum(cases) => {
            out.push_str("| case | |\n|---|---|\n");
            for case in &cases.cases {
                let _ = writeln!(out, "| `{}` | {} |", case.name, cell(&case.docs));
            }
        }
        TypeDefKind::Flags(flags) => {
            out.push_str("| flag | |\n|---|---|\n");
            for flag in &flags.flags {
                let _ = writeln!(out, "| `{}` | {} |", flag.name, cell(&flag.docs));
            }
        }
        TypeDefKind::Resource => {
            let methods = resolve.interfaces[interface]
                .functions
                .values()
                .filter(|f| {
                    matches!(f.kind, FunctionKind::Method(owner)
                    | FunctionKind::Static(owner)
                    | FunctionKind::Constructor(owner) if owner == id)
                });
            for method in methods {
                let _ = writeln!(
                    out,
                    "- `{}`{}",
                    signature(resolve, method),
                    match cell(&method.docs) {
                        text if text.is_empty() => String::new(),
                        text => format!(": {text}"),
                    }
                );
            }
        }
        kind => {
            let _ = writeln!(
                out,
                "```wit\ntype {name} = {}\n```",
                anonymous(resolve, kind)
            );
        }
    }
}

/// `name: func(a: t, ...) -> r`, with the method's own resource left out.
fn signature(resolve: &Resolve, function: &Function) -> String {
    let params: Vec<String> = function
        .params
        .iter()
        .filter(|p| !(matches!(function.kind, FunctionKind::Method(_)) && p.name == "self"))
        .map(|p| format!("{}: {}", p.name, type_name(resolve, &p.ty)))
        .collect();
    let result = function
        .result
        .map(|t| format!(" -> {}", type_name(resolve, &t)))
        .unwrap_or_default();
    let name = function.item_name();
    match function.kind {
        FunctionKind::Constructor(_) => format!("constructor({})", params.join(", ")),
        FunctionKind::Static(_) => format!("{name}: static func({}){result}", params.join(", ")),
        _ => format!("{name}: func({}){result}", params.join(", ")),
    }
}

fn type_name(resolve: &Resolve, ty: &Type) -> String {
    match ty {
        Type::Bool => "bool".into(),
        Type::U8 => "u8".into(),
        Type::U16 => "u16".into(),
        Type::U32 => "u32".into(),
        Type::U64 => "u64".into(),
        Type::S8 => "s8".into(),
        Type::S16 => "s16".into(),
        Type::S32 => "s32".into(),
        Type::S64 => "s64".into(),
        Type::F32 => "f32".into(),
        Type::F64 => "f64".into(),
        Type::Char => "char".into(),
        Type::String => "string".into(),
        Type::ErrorContext => "error-context".into(),
        Type::Id(id) => {
            let def = &resolve.types[*id];
            match &def.name {
                Some(name) => name.clone(),
                None => anonymous(resolve, &def.kind),
            }
        }
    }
}

fn anonymous(resolve: &Resolve, kind: &TypeDefKind) -> String {
    let name = |t: &Type| type_name(resolve, t);
    let maybe = |t: &Option<Type>| t.as_ref().map(name).unwrap_or_else(|| "_".into());
    match kind {
        TypeDefKind::List(t) => format!("list<{}>", name(t)),
        TypeDefKind::FixedLengthList(t, n) => format!("list<{}, {n}>", name(t)),
        TypeDefKind::Map(k, v) => format!("map<{}, {}>", name(k), name(v)),
        TypeDefKind::Option(t) => format!("option<{}>", name(t)),
        TypeDefKind::Result(r) => match (&r.ok, &r.err) {
            (None, None) => "result".into(),
            (ok, None) => format!("result<{}>", maybe(ok)),
            (ok, err) => format!("result<{}, {}>", maybe(ok), maybe(err)),
        },
        TypeDefKind::Tuple(t) => format!(
            "tuple<{}>",
            t.types.iter().map(name).collect::<Vec<_>>().join(", ")
        ),
        TypeDefKind::Handle(Handle::Own(id)) => type_name(resolve, &Type::Id(*id)),
        TypeDefKind::Handle(Handle::Borrow(id)) => {
            format!("borrow<{}>", type_name(resolve, &Type::Id(*id)))
        }
        TypeDefKind::Future(t) => format!("future<{}>", maybe(t)),
        TypeDefKind::Stream(t) => format!("stream<{}>", maybe(t)),
        TypeDefKind::Type(t) => name(t),
        TypeDefKind::Record(_)
        | TypeDefKind::Variant(_)
        | TypeDefKind::Enum(_)
        | TypeDefKind::Flags(_)
        | TypeDefKind::Resource
        | TypeDefKind::Unknown => "?".into(),
    }
}

fn since(out: &mut String, stability: &Stability) {
    if let Stability::Stable { since, .. } = stability {
        let _ = writeln!(out, "*Since {since}.*\n");
    }
}

fn docs(out: &mut String, docs: &Docs) {
    if let Some(text) = &docs.contents {
        let _ = writeln!(out, "{}\n", text.trim());
    }
}

/// Docs in one table cell: one line, pipes escaped.
fn cell(docs: &Docs) -> String {
    docs.contents
        .as_deref()
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}
