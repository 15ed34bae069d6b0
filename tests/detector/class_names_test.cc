// Class names that travel with a model: the metadata "names" literal in the
// forms exporters write, and the order in which names are looked for.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "damoyolo/detector.h"
#include "testutil/temp_dir_test.h"
#include "testutil/testutil.h"

namespace {

namespace fs = std::filesystem;
using damoyolo::ErrorCode;
using damoyolo::LabelSource;
using damoyolo::parse_class_names_metadata;
using damoyolo::resolve_class_names;
using Names = std::vector<std::string>;

Names parse_ok(const std::string& s) {
  auto r = parse_class_names_metadata(s);
  EXPECT_TRUE(r.ok()) << s << ": " << r.status().to_string();
  return r.ok() ? *r : Names{};
}

TEST(NamesMetadata, JsonListAndObjectAndPythonDict) {
  EXPECT_EQ(parse_ok(R"(["cat", "dog"])"), (Names{"cat", "dog"}));
  EXPECT_EQ(parse_ok(R"({"1": "dog", "0": "cat"})"), (Names{"cat", "dog"}));
  // Ultralytics writes str(dict): Python literals, int keys, single quotes.
  EXPECT_EQ(parse_ok("{0: 'person', 1: 'traffic light', 2: \"it's\"}"), (Names{"person", "traffic light", "it's"}));
  EXPECT_EQ(parse_ok("['a', 'b',]"), (Names{"a", "b"}));  // Python's trailing comma
  EXPECT_EQ(parse_ok(" [ \"a\" ,\n\"b\" ] "), (Names{"a", "b"}));
}

TEST(NamesMetadata, EscapesAsJsonAndPythonWriteThem) {
  EXPECT_EQ(parse_ok(R"(["a\"b", "c\\d", "e\/f", "tab\there", "cr\rlf\n"])"),
            (Names{"a\"b", "c\\d", "e/f", "tab\there", "cr\rlf\n"}));
  // json.dumps (ensure_ascii) writes non-ASCII as \u escapes, and names
  // beyond the basic plane as surrogate pairs.
  EXPECT_EQ(parse_ok(R"(["caf\u00e9", "\u732b", "dog \ud83d\udc36"])"),
            (Names{"caf\xC3\xA9", "\xE7\x8C\xAB", "dog \xF0\x9F\x90\xB6"}));
  // Python's repr: \x, \U.
  EXPECT_EQ(parse_ok(R"(['\x41\x08', '\U0001F436'])"), (Names{"A\b", "\xF0\x9F\x90\xB6"}));
  // Raw UTF-8 passes through.
  EXPECT_EQ(parse_ok("[\"ß\"]"), (Names{"ß"}));
}

TEST(NamesMetadata, MalformedValuesAreParseErrorsThatSayWhat) {
  const std::pair<const char*, const char*> cases[] = {
      {"", "expected a list"},
      {"cat,dog", "expected a list"},
      {"[]", "no class names"},
      {"[\"a\", \"\"]", "empty name"},
      {"[\"a\"", "expected ','"},
      {"[\"a", "unterminated"},
      {"[\"a\"] x", "after the closing"},
      {"{0: 'a', 2: 'c'}", "class 1 has no name"},
      {"{0: 'a', 0: 'b'}", "named twice"},
      {"{-1: 'a'}", "class index"},
      {"{x: 'a'}", "class index"},
      {"[\"\\q\"]", "unknown escape"},
      {"[\"\\ud83d\"]", "lone surrogate"},
      {"[\"\\udc36\"]", "lone surrogate"},
      {"[\"\\u12\"]", "escape"},
      {"[1, 2]", "quoted"},
  };
  for (const auto& [text, why] : cases) {
    auto r = parse_class_names_metadata(text);
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.status().code(), ErrorCode::kParseError) << text;
    EXPECT_NE(r.status().message().find(why), std::string::npos) << text << " -> " << r.status().message();
  }
}

class ResolveNames : public damoyolo::testing::TempDirTest {};

TEST_F(ResolveNames, LooksInTheDocumentedOrder) {
  const std::string model = (dir_ / "m.onnx").string();
  const std::map<std::string, std::string> meta = {{"names", R"(["a", "b"])"}};
  std::ofstream(dir_ / "m.names") << "x\ny\n";
  std::ofstream(dir_ / "l.txt") << "p\nq\n";

  auto from_file = resolve_class_names(model, meta, 2, (dir_ / "l.txt").string());
  ASSERT_TRUE(from_file.ok());
  EXPECT_EQ(from_file->source, LabelSource::kLabelsFile);
  EXPECT_EQ(from_file->names, (Names{"p", "q"}));

  auto from_options = resolve_class_names(model, meta, 2, "", {"o1", "o2"});
  ASSERT_TRUE(from_options.ok());
  EXPECT_EQ(from_options->source, LabelSource::kOptions);

  auto from_meta = resolve_class_names(model, meta, 2);
  ASSERT_TRUE(from_meta.ok());
  EXPECT_EQ(from_meta->source, LabelSource::kModelMetadata);
  EXPECT_EQ(from_meta->names, (Names{"a", "b"}));

  auto from_sidecar = resolve_class_names(model, {}, 2);
  ASSERT_TRUE(from_sidecar.ok());
  EXPECT_EQ(from_sidecar->source, LabelSource::kSidecarFile);
  EXPECT_EQ(from_sidecar->names, (Names{"x", "y"}));
  // .labels.txt is looked for before .names.
  std::ofstream(dir_ / "m.labels.txt") << "u\nv\n";
  EXPECT_EQ(resolve_class_names(model, {}, 2)->names, (Names{"u", "v"}));

  auto coco = resolve_class_names((dir_ / "other.onnx").string(), {}, 80);
  ASSERT_TRUE(coco.ok());
  EXPECT_EQ(coco->source, LabelSource::kCoco80);
  EXPECT_EQ(coco->names[0], "person");

  auto generic = resolve_class_names((dir_ / "other.onnx").string(), {}, 3);
  ASSERT_TRUE(generic.ok());
  EXPECT_EQ(generic->names, (Names{"class0", "class1", "class2"}));
}

TEST_F(ResolveNames, WrongCountOrEncodingIsAnErrorNamingTheSource) {
  const std::string model = (dir_ / "m.onnx").string();
  auto count = resolve_class_names(model, {{"names", R"(["a", "b", "c"])"}}, 2);
  ASSERT_FALSE(count.ok());
  EXPECT_NE(count.status().message().find("predicts 2 classes but the model's metadata 'names' has 3 names"),
            std::string::npos)
      << count.status().message();
  // A Latin-1 labels file would make every JSON output fail after the work.
  std::ofstream(dir_ / "latin1.txt") << "caf\xE9\nb\n";
  auto latin = resolve_class_names(model, {}, 2, (dir_ / "latin1.txt").string());
  ASSERT_FALSE(latin.ok());
  EXPECT_NE(latin.status().message().find("not valid UTF-8"), std::string::npos) << latin.status().message();
  auto bad_meta = resolve_class_names(model, {{"names", "[oops]"}}, 2);
  ASSERT_FALSE(bad_meta.ok());
  EXPECT_NE(bad_meta.status().message().find("give a labels file to override"), std::string::npos);
}

}  // namespace
