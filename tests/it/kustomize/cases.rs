//! The edit cases: one table shared by the table tests (exact bytes, untouched lines) and the
//! kustomize tests (`kubectl kustomize` renders the output over a base). Every successful
//! input lists `../base` as a resource so it can be rendered as an overlay.

/// One `set image` run and what it must produce.
pub(super) struct Case {
    /// What the case shows, as a sentence in snake case.
    pub name: &'static str,
    pub input: &'static str,
    pub specs: &'static [&'static str],
    pub expect: Expect,
}

pub(super) enum Expect {
    /// The file becomes `output`, and kustomize then renders each base image (left) as the
    /// image on the right.
    Edited {
        output: &'static str,
        deployed: &'static [(&'static str, &'static str)],
    },
    /// The bytes stay exactly as they were.
    Unchanged {
        deployed: &'static [(&'static str, &'static str)],
    },
    /// Refused on `line` with a message containing `message`; nothing is written.
    Refused { line: usize, message: &'static str },
}

impl Case {
    /// The images kustomize must render, for a successful case.
    pub(super) fn deployed(&self) -> Option<&'static [(&'static str, &'static str)]> {
        match self.expect {
            Expect::Edited { deployed, .. } | Expect::Unchanged { deployed } => Some(deployed),
            Expect::Refused { .. } => None,
        }
    }

    /// The file after the edit, for a successful case.
    pub(super) fn output(&self) -> Option<&'static str> {
        match self.expect {
            Expect::Edited { output, .. } => Some(output),
            Expect::Unchanged { .. } => Some(self.input),
            Expect::Refused { .. } => None,
        }
    }
}

macro_rules! digest {
    () => {
        "sha256:24a0c4b4a4c0eb97a1aabb8e29f18e917d05abfe1b7a7c07857230879ce7d3d3"
    };
}
macro_rules! digest2 {
    () => {
        "sha256:0000000000000000000000000000000000000000000000000000000000000001"
    };
}

/// The Nova staging overlay as people write it: comments, an indented list, a sorted one.
macro_rules! nova {
    ($($entries:expr),*) => {
        concat!(
            "# Nova staging overlay\n",
            "apiVersion: kustomize.config.k8s.io/v1beta1\n",
            "kind: Kustomization\n",
            "resources:\n",
            "  - ../base # the shared manifests\n",
            "images:\n",
            $($entries),*
        )
    };
}

pub(super) const CASES: &[Case] = &[
    // ---- Replacing fields of an existing entry -------------------------------------------
    Case {
        name: "a_full_spec_changes_only_the_tag_when_only_the_tag_differs",
        input: nova!(
            "  - name: auth-service\n    newName: reg.local/nova/auth-service # pinned registry\n    newTag: seed\n"
        ),
        specs: &["auth-service=reg.local/nova/auth-service:0a1b2c3"],
        expect: Expect::Edited {
            output: nova!(
                "  - name: auth-service\n    newName: reg.local/nova/auth-service # pinned registry\n    newTag: 0a1b2c3\n"
            ),
            deployed: &[("auth-service", "reg.local/nova/auth-service:0a1b2c3")],
        },
    },
    Case {
        name: "a_tag_spec_clears_the_new_name_and_the_digest",
        input: nova!(concat!(
            "  - name: app\n    newName: reg/app\n    newTag: v1\n    digest: ",
            digest!(),
            "\n"
        )),
        specs: &["app:v2"],
        expect: Expect::Edited {
            output: nova!("  - name: app\n    newTag: v2\n"),
            deployed: &[("app", "app:v2")],
        },
    },
    Case {
        name: "a_new_name_spec_clears_the_tag_and_the_digest",
        input: nova!(concat!(
            "  - name: app\n    newName: reg/app\n    newTag: v1\n    digest: ",
            digest!(),
            "\n"
        )),
        specs: &["app=reg/other"],
        expect: Expect::Edited {
            output: nova!("  - name: app\n    newName: reg/other\n"),
            deployed: &[("app", "reg/other")],
        },
    },
    Case {
        name: "a_spec_with_all_three_parts_adds_the_missing_fields_in_order",
        input: nova!("  - name: app\n  - name: zed\n    newTag: v9\n"),
        specs: &[concat!("app=reg/app:v2@", digest!())],
        expect: Expect::Edited {
            output: nova!(
                concat!(
                    "  - name: app\n    newName: reg/app\n    newTag: v2\n    digest: ",
                    digest!(),
                    "\n"
                ),
                "  - name: zed\n    newTag: v9\n"
            ),
            deployed: &[
                ("app", concat!("reg/app:v2@", digest!())),
                ("zed", "zed:v9"),
            ],
        },
    },
    Case {
        name: "a_digest_spec_replaces_a_tag_with_a_digest",
        input: nova!("  - name: app\n    newName: reg/app\n    # the release\n    newTag: v1\n"),
        specs: &[concat!("app@", digest!())],
        expect: Expect::Edited {
            output: nova!(concat!(
                "  - name: app\n    digest: ",
                digest!(),
                "\n    # the release\n"
            )),
            deployed: &[("app", concat!("app@", digest!()))],
        },
    },
    Case {
        name: "a_tag_and_digest_spec_without_a_new_name",
        input: nova!("  - name: app\n    newName: reg/app\n    newTag: v1\n"),
        specs: &[concat!("app:v2@", digest!())],
        expect: Expect::Edited {
            output: nova!(concat!(
                "  - name: app\n    newTag: v2\n    digest: ",
                digest!(),
                "\n"
            )),
            deployed: &[("app", concat!("app:v2@", digest!()))],
        },
    },
    Case {
        name: "a_star_keeps_the_files_new_name",
        input: nova!(concat!(
            "  - name: app\n    newName: reg/app\n    newTag: v1\n    digest: ",
            digest!(),
            "\n"
        )),
        specs: &["app=*:v2"],
        expect: Expect::Edited {
            output: nova!("  - name: app\n    newName: reg/app\n    newTag: v2\n"),
            deployed: &[("app", "reg/app:v2")],
        },
    },
    Case {
        name: "a_star_keeps_the_files_tag_while_a_digest_is_added",
        input: nova!("  - name: app\n    newName: reg/app\n    newTag: v1\n"),
        specs: &[concat!("app=reg/app:*@", digest!())],
        expect: Expect::Edited {
            output: nova!(concat!(
                "  - name: app\n    newName: reg/app\n    newTag: v1\n    digest: ",
                digest!(),
                "\n"
            )),
            deployed: &[("app", concat!("reg/app:v1@", digest!()))],
        },
    },
    Case {
        name: "stars_in_every_position_change_nothing",
        input: nova!("  - name: app # keep me\n    newName: reg/app\n    newTag: 'v1'\n"),
        specs: &["app=*:*@*"],
        expect: Expect::Unchanged {
            deployed: &[("app", "reg/app:v1")],
        },
    },
    Case {
        name: "a_star_for_a_new_entry_leaves_the_field_out",
        input: nova!("  - name: app\n    newTag: v1\n"),
        specs: &["web=*:v3"],
        expect: Expect::Edited {
            output: nova!(
                "  - name: app\n    newTag: v1\n",
                "  - name: web\n    newTag: v3\n"
            ),
            deployed: &[("app", "app:v1"), ("web", "web:v3")],
        },
    },
    Case {
        name: "setting_what_the_file_already_says_changes_no_byte",
        input: nova!("  - name: app\n    newName: \"reg/app\"\n    newTag: v1 # current\n"),
        specs: &["app=reg/app:v1"],
        expect: Expect::Unchanged {
            deployed: &[("app", "reg/app:v1")],
        },
    },
    Case {
        name: "a_registry_port_is_part_of_the_new_name",
        input: nova!("  - name: app\n    newTag: v1\n"),
        specs: &["app=localhost:5000/nova/app:v2"],
        expect: Expect::Edited {
            output: nova!("  - name: app\n    newName: localhost:5000/nova/app\n    newTag: v2\n"),
            deployed: &[("app", "localhost:5000/nova/app:v2")],
        },
    },
    Case {
        name: "a_name_with_a_registry_port_is_matched_whole",
        input: nova!("  - name: localhost:5000/app\n    newTag: v1\n"),
        specs: &["localhost:5000/app:v2"],
        expect: Expect::Edited {
            output: nova!("  - name: localhost:5000/app\n    newTag: v2\n"),
            deployed: &[("localhost:5000/app", "localhost:5000/app:v2")],
        },
    },
    // ---- Quoting -------------------------------------------------------------------------
    Case {
        name: "a_sha_that_reads_as_a_float_is_quoted",
        input: nova!("  - name: app\n    newName: reg/app\n    newTag: seed\n"),
        specs: &["app=reg/app:706798e8"],
        expect: Expect::Edited {
            output: nova!("  - name: app\n    newName: reg/app\n    newTag: \"706798e8\"\n"),
            deployed: &[("app", "reg/app:706798e8")],
        },
    },
    Case {
        name: "tags_yaml_reads_as_numbers_bools_or_null_are_quoted",
        input: nova!(
            "  - name: a\n  - name: b\n  - name: c\n  - name: d\n  - name: e\n  - name: f\n"
        ),
        specs: &["a:0123", "b:yes", "c:1e3", "d:null", "e:true", "f:0x1f"],
        expect: Expect::Edited {
            output: nova!(
                "  - name: a\n    newTag: \"0123\"\n",
                "  - name: b\n    newTag: \"yes\"\n",
                "  - name: c\n    newTag: \"1e3\"\n",
                "  - name: d\n    newTag: \"null\"\n",
                "  - name: e\n    newTag: \"true\"\n",
                "  - name: f\n    newTag: \"0x1f\"\n"
            ),
            deployed: &[
                ("a", "a:0123"),
                ("b", "b:yes"),
                ("c", "c:1e3"),
                ("d", "d:null"),
                ("e", "e:true"),
                ("f", "f:0x1f"),
            ],
        },
    },
    Case {
        name: "a_single_quoted_value_keeps_its_quotes",
        input: nova!("  - name: app\n    newTag: 'v1'\n"),
        specs: &["app:v2"],
        expect: Expect::Edited {
            output: nova!("  - name: app\n    newTag: 'v2'\n"),
            deployed: &[("app", "app:v2")],
        },
    },
    Case {
        name: "a_double_quoted_value_keeps_its_quotes",
        input: nova!("  - name: app\n    newTag: \"123\"\n"),
        specs: &["app:124"],
        expect: Expect::Edited {
            output: nova!("  - name: app\n    newTag: \"124\"\n"),
            deployed: &[("app", "app:124")],
        },
    },
    Case {
        name: "a_single_quoted_number_stays_single_quoted",
        input: nova!("  - name: app\n    newTag: '0123'\n"),
        specs: &["app:0124"],
        expect: Expect::Edited {
            output: nova!("  - name: app\n    newTag: '0124'\n"),
            deployed: &[("app", "app:0124")],
        },
    },
    Case {
        name: "new_fields_copy_the_quoting_of_the_entry",
        input: nova!("  - \"name\": \"app\"\n"),
        specs: &["app:v2"],
        expect: Expect::Edited {
            output: nova!("  - \"name\": \"app\"\n    \"newTag\": \"v2\"\n"),
            deployed: &[("app", "app:v2")],
        },
    },
    // ---- Comments and layout -------------------------------------------------------------
    Case {
        name: "a_trailing_comment_on_a_changed_line_stays",
        input: nova!("  - name: app\n    newTag: v1   # bumped by CI\n"),
        specs: &["app:v2"],
        expect: Expect::Edited {
            output: nova!("  - name: app\n    newTag: v2   # bumped by CI\n"),
            deployed: &[("app", "app:v2")],
        },
    },
    Case {
        name: "a_cleared_field_takes_only_its_own_line",
        input: nova!(
            "  - name: app\n    # where it comes from\n    newName: reg/app # old\n    # what runs\n    newTag: v1\n"
        ),
        specs: &["app:v2"],
        expect: Expect::Edited {
            output: nova!(
                "  - name: app\n    # where it comes from\n    # what runs\n    newTag: v2\n"
            ),
            deployed: &[("app", "app:v2")],
        },
    },
    Case {
        name: "an_entry_whose_first_key_is_cleared_keeps_its_dash",
        input: nova!("  - newName: reg/app # first\n    name: app\n    newTag: v1\n"),
        specs: &["app:v2"],
        expect: Expect::Edited {
            output: nova!("  - name: app\n    newTag: v2\n"),
            deployed: &[("app", "app:v2")],
        },
    },
    Case {
        name: "keys_in_an_unusual_order_are_edited_where_they_stand",
        input: nova!("  - newTag: v1\n    name: app\n"),
        specs: &["app=reg/app:v2"],
        expect: Expect::Edited {
            output: nova!("  - newTag: v2\n    name: app\n    newName: reg/app\n"),
            deployed: &[("app", "reg/app:v2")],
        },
    },
    Case {
        name: "an_empty_field_is_filled_in_place",
        input: nova!("  - name: app\n    newTag:\n"),
        specs: &["app:v2"],
        expect: Expect::Edited {
            output: nova!("  - name: app\n    newTag: v2\n"),
            deployed: &[("app", "app:v2")],
        },
    },
    Case {
        name: "tag_suffix_goes_because_kustomize_rewrites_the_entry",
        input: nova!("  - name: app\n    tagSuffix: -debug\n    newTag: v1\n"),
        specs: &["app:v2"],
        expect: Expect::Edited {
            output: nova!("  - name: app\n    newTag: v2\n"),
            deployed: &[("app", "app:v2")],
        },
    },
    Case {
        name: "multibyte_text_before_a_value_does_not_shift_the_edit",
        input: "# Überschrift – café\nresources: [../base] # ré\nimages:\n- name: app # ünï\n  newTag: \"v1\" # ✓\n",
        specs: &["app:v2"],
        expect: Expect::Edited {
            output: "# Überschrift – café\nresources: [../base] # ré\nimages:\n- name: app # ünï\n  newTag: \"v2\" # ✓\n",
            deployed: &[("app", "app:v2")],
        },
    },
    Case {
        name: "block_scalars_and_long_text_outside_images_are_left_alone",
        input: "resources:\n- ../base\ncommonAnnotations:\n  note: |\n    images: are set by CI\n  long: one\n    two\nimages:\n- name: app\n  newTag: v1\n",
        specs: &["app:v2"],
        expect: Expect::Edited {
            output: "resources:\n- ../base\ncommonAnnotations:\n  note: |\n    images: are set by CI\n  long: one\n    two\nimages:\n- name: app\n  newTag: v2\n",
            deployed: &[("app", "app:v2")],
        },
    },
    // ---- New entries ---------------------------------------------------------------------
    Case {
        name: "a_comment_between_the_dash_and_the_first_key_stays",
        input: "resources:\n- ../base\nimages:\n- # the API\n  name: b\n  newTag: b1\n",
        specs: &["a:a1", "b=reg/b:*"],
        expect: Expect::Edited {
            output: "resources:\n- ../base\nimages:\n- name: a\n  newTag: a1\n- # the API\n  name: b\n  newName: reg/b\n  newTag: b1\n",
            deployed: &[("a", "a:a1"), ("b", "reg/b:b1")],
        },
    },
    Case {
        name: "a_missing_entry_goes_in_sorted_position",
        input: nova!(
            "  - name: auth-service\n    newTag: a1\n",
            "  - name: user-service\n    newTag: u1\n"
        ),
        specs: &["feed-service=reg/nova/feed-service:f1"],
        expect: Expect::Edited {
            output: nova!(
                "  - name: auth-service\n    newTag: a1\n",
                "  - name: feed-service\n    newName: reg/nova/feed-service\n    newTag: f1\n",
                "  - name: user-service\n    newTag: u1\n"
            ),
            deployed: &[
                ("auth-service", "auth-service:a1"),
                ("feed-service", "reg/nova/feed-service:f1"),
                ("user-service", "user-service:u1"),
            ],
        },
    },
    Case {
        name: "a_missing_entry_that_sorts_first_goes_above_the_comment_of_the_first",
        input: nova!("  # the user service\n  - name: user-service\n    newTag: u1\n"),
        specs: &["auth-service:a2"],
        expect: Expect::Edited {
            output: nova!(
                "  - name: auth-service\n    newTag: a2\n",
                "  # the user service\n  - name: user-service\n    newTag: u1\n"
            ),
            deployed: &[
                ("auth-service", "auth-service:a2"),
                ("user-service", "user-service:u1"),
            ],
        },
    },
    Case {
        name: "a_missing_entry_that_sorts_last_is_appended",
        input: nova!("  - name: a\n    newTag: \"1\"\n"),
        specs: &["b:2"],
        expect: Expect::Edited {
            output: nova!(
                "  - name: a\n    newTag: \"1\"\n",
                "  - name: b\n    newTag: \"2\"\n"
            ),
            deployed: &[("a", "a:1"), ("b", "b:2")],
        },
    },
    Case {
        name: "a_missing_entry_in_an_unsorted_list_is_appended",
        input: "resources:\n- ../base\nimages:\n- name: zed\n  newTag: z1\n- name: app\n  newTag: a1\n# end of images\nnamespace: nova\n",
        specs: &["mid:m1"],
        expect: Expect::Edited {
            output: "resources:\n- ../base\nimages:\n- name: zed\n  newTag: z1\n- name: app\n  newTag: a1\n- name: mid\n  newTag: m1\n# end of images\nnamespace: nova\n",
            deployed: &[("zed", "zed:z1"), ("app", "app:a1"), ("mid", "mid:m1")],
        },
    },
    Case {
        name: "a_new_entry_copies_a_flush_list",
        input: "resources:\n- ../base\nimages:\n- name: b\n  newTag: b1\n",
        specs: &["a=reg/a:a1"],
        expect: Expect::Edited {
            output: "resources:\n- ../base\nimages:\n- name: a\n  newName: reg/a\n  newTag: a1\n- name: b\n  newTag: b1\n",
            deployed: &[("a", "reg/a:a1"), ("b", "b:b1")],
        },
    },
    Case {
        name: "a_new_entry_copies_a_wide_indentation",
        input: "resources:\n    - ../base\nimages:\n    -   name: a\n        newTag: a1\n",
        specs: &["b:b1"],
        expect: Expect::Edited {
            output: "resources:\n    - ../base\nimages:\n    -   name: a\n        newTag: a1\n    -   name: b\n        newTag: b1\n",
            deployed: &[("a", "a:a1"), ("b", "b:b1")],
        },
    },
    Case {
        name: "several_specs_edit_and_add_entries_in_one_pass",
        input: nova!(
            "  - name: auth-service\n    newTag: a1\n",
            "  - name: user-service\n    newTag: u1\n"
        ),
        specs: &["user-service:u2", "media-service:m1", "auth-service:a2"],
        expect: Expect::Edited {
            output: nova!(
                "  - name: auth-service\n    newTag: a2\n",
                "  - name: media-service\n    newTag: m1\n",
                "  - name: user-service\n    newTag: u2\n"
            ),
            deployed: &[
                ("auth-service", "auth-service:a2"),
                ("media-service", "media-service:m1"),
                ("user-service", "user-service:u2"),
            ],
        },
    },
    Case {
        name: "the_last_spec_for_a_name_wins",
        input: nova!("  - name: app\n    newName: reg/app\n    newTag: v1\n"),
        specs: &["app:v2", "app=*:v3"],
        expect: Expect::Edited {
            output: nova!("  - name: app\n    newName: reg/app\n    newTag: v3\n"),
            deployed: &[("app", "reg/app:v3")],
        },
    },
    // ---- No list yet ---------------------------------------------------------------------
    Case {
        name: "an_absent_images_key_is_added_at_the_end_in_the_files_list_style",
        input: "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../base\n# images are set by CI\n",
        specs: &["app=reg/app:v1"],
        expect: Expect::Edited {
            output: "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../base\n# images are set by CI\nimages:\n  - name: app\n    newName: reg/app\n    newTag: v1\n",
            deployed: &[("app", "reg/app:v1")],
        },
    },
    Case {
        name: "an_absent_images_key_is_added_to_a_file_without_a_final_newline",
        input: "resources:\n- ../base",
        specs: &["app:v1"],
        expect: Expect::Edited {
            output: "resources:\n- ../base\nimages:\n- name: app\n  newTag: v1",
            deployed: &[("app", "app:v1")],
        },
    },
    Case {
        name: "an_absent_images_key_goes_before_the_document_end_marker",
        input: "---\nresources:\n- ../base\n...\n",
        specs: &["app:v1"],
        expect: Expect::Edited {
            output: "---\nresources:\n- ../base\nimages:\n- name: app\n  newTag: v1\n...\n",
            deployed: &[("app", "app:v1")],
        },
    },
    Case {
        name: "an_empty_images_key_gets_a_list",
        input: "images: # set by CI\nresources:\n- ../base\n",
        specs: &["app:v1"],
        expect: Expect::Edited {
            output: "images: # set by CI\n- name: app\n  newTag: v1\nresources:\n- ../base\n",
            deployed: &[("app", "app:v1")],
        },
    },
    Case {
        name: "a_null_images_value_is_replaced_by_a_list",
        input: "resources:\n  - ../base\nimages: ~\n",
        specs: &["app:v1"],
        expect: Expect::Edited {
            output: "resources:\n  - ../base\nimages:\n  - name: app\n    newTag: v1\n",
            deployed: &[("app", "app:v1")],
        },
    },
    // ---- Flow style ----------------------------------------------------------------------
    Case {
        name: "a_flow_list_is_edited_in_place",
        input: "resources: [../base]\nimages: [{name: app, newName: reg/app, newTag: v1}]  # flow\n",
        specs: &["app=reg/app:v2"],
        expect: Expect::Edited {
            output: "resources: [../base]\nimages: [{name: app, newName: reg/app, newTag: v2}]  # flow\n",
            deployed: &[("app", "reg/app:v2")],
        },
    },
    Case {
        name: "a_flow_entry_loses_cleared_fields_and_gains_new_ones_in_place",
        input: "resources: [../base]\nimages: [{name: app, newName: reg/app, newTag: v1}, {name: web, newTag: w1}]\n",
        specs: &[concat!("app@", digest!()), "web=reg/web:w2"],
        expect: Expect::Edited {
            output: concat!(
                "resources: [../base]\nimages: [{name: app, digest: ",
                digest!(),
                "}, {name: web, newName: reg/web, newTag: w2}]\n"
            ),
            deployed: &[("app", concat!("app@", digest!())), ("web", "reg/web:w2")],
        },
    },
    Case {
        name: "a_flow_list_gets_a_new_entry_in_sorted_position",
        input: "resources: [../base]\nimages: [{ name: a, newTag: a1 }, { name: c, newTag: c1 }]\n",
        specs: &["b:1,2"],
        expect: Expect::Edited {
            output: "resources: [../base]\nimages: [{ name: a, newTag: a1 }, { name: b, newTag: \"1,2\" }, { name: c, newTag: c1 }]\n",
            deployed: &[("a", "a:a1"), ("b", "b:1,2"), ("c", "c:c1")],
        },
    },
    Case {
        name: "an_empty_flow_list_gets_its_first_entry",
        input: "resources: [../base]\nimages: []\n",
        specs: &["app=localhost:5000/app:v1"],
        expect: Expect::Edited {
            output: "resources: [../base]\nimages: [{name: app, newName: localhost:5000/app, newTag: v1}]\n",
            deployed: &[("app", "localhost:5000/app:v1")],
        },
    },
    Case {
        name: "a_flow_list_with_one_entry_per_line_keeps_that_layout",
        input: "resources: [../base]\nimages: [\n  {name: a, newTag: a1},\n  {name: c},\n]\n",
        specs: &["b:b1", "d:d1"],
        expect: Expect::Edited {
            output: "resources: [../base]\nimages: [\n  {name: a, newTag: a1},\n  {name: b, newTag: b1},\n  {name: c},\n  {name: d, newTag: d1},\n]\n",
            deployed: &[("a", "a:a1"), ("b", "b:b1"), ("c", "c"), ("d", "d:d1")],
        },
    },
    Case {
        name: "a_flow_entry_in_a_block_list_is_edited_in_place",
        input: "resources:\n- ../base\nimages:\n- {name: app, newTag: v1}\n- {name: web, newTag: w1}\n",
        specs: &[concat!("app=reg/app:v2@", digest!()), "mid:m1"],
        expect: Expect::Edited {
            output: concat!(
                "resources:\n- ../base\nimages:\n- {name: app, newName: reg/app, newTag: v2, digest: ",
                digest!(),
                "}\n- {name: mid, newTag: m1}\n- {name: web, newTag: w1}\n"
            ),
            deployed: &[
                ("app", concat!("reg/app:v2@", digest!())),
                ("mid", "mid:m1"),
                ("web", "web:w1"),
            ],
        },
    },
    Case {
        name: "a_flow_root_mapping_gets_an_images_key",
        input: "{resources: [../base], namespace: nova}\n",
        specs: &["app:v1"],
        expect: Expect::Edited {
            output: "{resources: [../base], namespace: nova, images: [{name: app, newTag: v1}]}\n",
            deployed: &[("app", "app:v1")],
        },
    },
    // ---- Bytes: CRLF, BOM, `---` ---------------------------------------------------------
    Case {
        name: "crlf_line_endings_are_kept_and_used_for_new_lines",
        input: "resources:\r\n- ../base\r\nimages:\r\n- name: app\r\n  newName: reg/app\r\n  newTag: v1\r\n",
        specs: &[concat!("app:v2@", digest2!()), "web:w1"],
        expect: Expect::Edited {
            output: concat!(
                "resources:\r\n- ../base\r\nimages:\r\n- name: app\r\n  newTag: v2\r\n  digest: ",
                digest2!(),
                "\r\n- name: web\r\n  newTag: w1\r\n"
            ),
            deployed: &[("app", concat!("app:v2@", digest2!())), ("web", "web:w1")],
        },
    },
    Case {
        name: "a_byte_order_mark_is_kept",
        input: "\u{feff}resources:\n- ../base\nimages:\n- name: app\n  newTag: v1\n",
        specs: &["app:v2"],
        expect: Expect::Edited {
            output: "\u{feff}resources:\n- ../base\nimages:\n- name: app\n  newTag: v2\n",
            deployed: &[("app", "app:v2")],
        },
    },
    Case {
        name: "a_leading_document_marker_and_directives_are_kept",
        input: "%YAML 1.1\n---\n# overlay\nresources:\n- ../base\nimages:\n- name: app\n  newTag: v1\n",
        specs: &["app:v2"],
        expect: Expect::Edited {
            output: "%YAML 1.1\n---\n# overlay\nresources:\n- ../base\nimages:\n- name: app\n  newTag: v2\n",
            deployed: &[("app", "app:v2")],
        },
    },
    // ---- Refusals ------------------------------------------------------------------------
    Case {
        name: "a_block_scalar_in_an_entry_is_refused",
        input: "images:\n- name: app\n  newTag: |\n    v1\n",
        specs: &["app:v2"],
        expect: Expect::Refused {
            line: 3,
            message: "a block scalar",
        },
    },
    Case {
        name: "a_folded_scalar_in_an_entry_is_refused",
        input: "images:\n- name: app\n- name: web\n  newName: >-\n    reg/web\n",
        specs: &["app:v2"],
        expect: Expect::Refused {
            line: 4,
            message: "a block scalar",
        },
    },
    Case {
        name: "several_documents_are_refused",
        input: "resources:\n- ../base\n---\nimages: []\n",
        specs: &["app:v2"],
        expect: Expect::Refused {
            line: 3,
            message: "a second YAML document",
        },
    },
    Case {
        name: "a_duplicate_image_name_is_refused",
        input: "images:\n- name: app\n  newTag: v1\n- name: web\n- name: app\n  newTag: v2\n",
        specs: &["web:w2"],
        expect: Expect::Refused {
            line: 5,
            message: "a second entry for image \"app\" (the first is on line 2)",
        },
    },
    Case {
        name: "invalid_yaml_is_refused_at_the_scanners_line",
        input: "resources:\n- ../base\nimages:\n- name: app\n  newTag: \"v1\n",
        specs: &["app:v2"],
        expect: Expect::Refused {
            line: 5,
            message: "invalid YAML",
        },
    },
    Case {
        name: "a_list_at_the_root_is_refused",
        input: "# not a kustomization\n- name: app\n",
        specs: &["app:v2"],
        expect: Expect::Refused {
            line: 2,
            message: "not a mapping",
        },
    },
    Case {
        name: "an_empty_file_is_refused",
        input: "# nothing here yet\n",
        specs: &["app:v2"],
        expect: Expect::Refused {
            line: 1,
            message: "no YAML document",
        },
    },
    Case {
        name: "images_that_is_not_a_list_is_refused",
        input: "resources:\n- ../base\nimages:\n  app: v1\n",
        specs: &["app:v2"],
        expect: Expect::Refused {
            line: 4,
            message: "`images` is not a list",
        },
    },
    Case {
        name: "an_anchor_in_images_is_refused",
        input: "images:\n- &app\n  name: app\n  newTag: v1\n",
        specs: &["app:v2"],
        expect: Expect::Refused {
            line: 3,
            message: "anchor, alias or tag",
        },
    },
    Case {
        name: "an_alias_in_images_is_refused",
        input: "x: &tag v1\nimages:\n- name: app\n  newTag: *tag\n",
        specs: &["app:v2"],
        expect: Expect::Refused {
            line: 4,
            message: "anchor, alias or tag",
        },
    },
    Case {
        name: "a_tag_in_images_is_refused",
        input: "images:\n- name: app\n  newTag: !!str 0123\n",
        specs: &["app:v2"],
        expect: Expect::Refused {
            line: 3,
            message: "anchor, alias or tag",
        },
    },
    Case {
        name: "a_value_over_several_lines_is_refused",
        input: "images:\n- name: app\n  newName: \"reg/\n    app\"\n",
        specs: &["app:v2"],
        expect: Expect::Refused {
            line: 3,
            message: "over several lines",
        },
    },
    Case {
        name: "a_field_given_twice_in_an_entry_is_refused",
        input: "images:\n- name: app\n  newTag: v1\n  newTag: v2\n",
        specs: &["app:v3"],
        expect: Expect::Refused {
            line: 4,
            message: "a second `newTag` in this entry (the first is on line 3)",
        },
    },
    Case {
        name: "an_entry_that_is_not_a_mapping_is_refused",
        input: "images:\n- app:v1\n",
        specs: &["app:v2"],
        expect: Expect::Refused {
            line: 2,
            message: "not a mapping",
        },
    },
    Case {
        name: "a_second_images_key_is_refused",
        input: "images:\n- name: a\nresources: []\nimages:\n- name: b\n",
        specs: &["a:v2"],
        expect: Expect::Refused {
            line: 4,
            message: "a second `images` key",
        },
    },
    Case {
        name: "a_merge_key_at_the_root_is_refused",
        input: "base: &base\n  images: []\n<<: *base\n",
        specs: &["a:v2"],
        expect: Expect::Refused {
            line: 3,
            message: "merge key",
        },
    },
];
