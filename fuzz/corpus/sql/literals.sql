SELECT x'00ff', 1.5e3, N'nat', "quoted ident", [bracket] FROM other.notes
