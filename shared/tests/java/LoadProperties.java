// Loads properties files with java.util.Properties, as Kafka does, and prints what it read.
//
// Usage: java LoadProperties.java (file|text:file)...
//   file       loaded like Kafka's Utils.loadProps: Properties.load(InputStream), ISO 8859-1
//   text:file  the file's UTF-8 text loaded with Properties.load(Reader), as a user's text means
// Output: one JSON object per argument, one per line: {"key": "value", ...}, or
// {"\u0000error": "message"} when load throws.
import java.io.InputStream;
import java.io.Reader;
import java.io.StringReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.Properties;
import java.util.TreeMap;

public class LoadProperties {
    public static void main(String[] args) throws Exception {
        StringBuilder out = new StringBuilder();
        for (String arg : args) {
            Properties p = new Properties();
            try {
                if (arg.startsWith("text:")) {
                    String text = new String(Files.readAllBytes(Paths.get(arg.substring(5))), StandardCharsets.UTF_8);
                    try (Reader r = new StringReader(text)) {
                        p.load(r);
                    }
                } else {
                    try (InputStream in = Files.newInputStream(Paths.get(arg))) {
                        p.load(in);
                    }
                }
            } catch (IllegalArgumentException e) {
                out.append("{").append(json("\u0000error")).append(":").append(json(String.valueOf(e.getMessage()))).append("}\n");
                continue;
            }
            TreeMap<String, String> sorted = new TreeMap<>();
            for (String k : p.stringPropertyNames()) {
                sorted.put(k, p.getProperty(k));
            }
            out.append("{");
            boolean first = true;
            for (var e : sorted.entrySet()) {
                if (!first) out.append(",");
                first = false;
                out.append(json(e.getKey())).append(":").append(json(e.getValue()));
            }
            out.append("}\n");
        }
        System.out.print(out);
    }

    /** A JSON string; every char outside printable ASCII as a \\u escape (UTF-16 units). */
    static String json(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '"' || c == '\\') {
                b.append('\\').append(c);
            } else if (c < 0x20 || c > 0x7e) {
                b.append(String.format("\\u%04x", (int) c));
            } else {
                b.append(c);
            }
        }
        return b.append('"').toString();
    }
}
