package bench;

import java.io.InputStream;
import java.util.ArrayList;
import java.util.List;
import javax.xml.parsers.DocumentBuilderFactory;
import org.w3c.dom.Element;
import org.w3c.dom.NodeList;

/** The service's data, read from an XML resource in the jar. */
final class Catalogue {
    record Item(int id, String name, String price) {}

    private Catalogue() {}

    static List<Item> parse(InputStream in) throws Exception {
        var doc = DocumentBuilderFactory.newInstance().newDocumentBuilder().parse(in);
        NodeList nodes = doc.getElementsByTagName("item");
        List<Item> items = new ArrayList<>();
        for (int i = 0; i < nodes.getLength(); i++) {
            Element e = (Element) nodes.item(i);
            items.add(new Item(Integer.parseInt(e.getAttribute("id")), e.getAttribute("name"), e.getAttribute("price")));
        }
        return items;
    }

    static String toJson(List<Item> items) {
        StringBuilder sb = new StringBuilder("[");
        for (Item it : items) {
            if (sb.length() > 1) {
                sb.append(',');
            }
            sb.append("{\"id\":").append(it.id())
              .append(",\"name\":\"").append(it.name())
              .append("\",\"price\":\"").append(it.price()).append("\"}");
        }
        return sb.append("]").toString();
    }
}
