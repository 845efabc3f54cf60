"""Reference tables for synthetic patients: French departments, names, birth countries.

Plain data only (no logic beyond lookups), kept apart so that `patients.py` stays readable.
Cities are the departments' prefectures (public geography); names are common French
first and last names (public statistics). No real person is described by the combination.
"""

from __future__ import annotations

from typing import NamedTuple


class Department(NamedTuple):
    code: str  # "75", "2A", "971"
    city: str
    postcode: str  # postcode of the prefecture
    phone_zone: str  # first digits of a landline number there ("01" ... "05", "0590" ...)


def _metro(code: str, city: str, zone: str) -> Department:
    return Department(code, city, f"{code}000", zone)


METROPOLITAN: tuple[Department, ...] = (
    _metro("01", "Bourg-en-Bresse", "04"), _metro("02", "Laon", "03"),
    _metro("03", "Moulins", "04"), _metro("04", "Digne-les-Bains", "04"),
    _metro("05", "Gap", "04"), _metro("06", "Nice", "04"),
    _metro("07", "Privas", "04"), _metro("08", "Charleville-Mézières", "03"),
    _metro("09", "Foix", "05"), _metro("10", "Troyes", "03"),
    _metro("11", "Carcassonne", "04"), _metro("12", "Rodez", "05"),
    Department("13", "Marseille", "13001", "04"), _metro("14", "Caen", "02"),
    _metro("15", "Aurillac", "04"), _metro("16", "Angoulême", "05"),
    _metro("17", "La Rochelle", "05"), _metro("18", "Bourges", "02"),
    _metro("19", "Tulle", "05"), _metro("21", "Dijon", "03"),
    _metro("22", "Saint-Brieuc", "02"), _metro("23", "Guéret", "05"),
    _metro("24", "Périgueux", "05"), _metro("25", "Besançon", "03"),
    _metro("26", "Valence", "04"), _metro("27", "Évreux", "02"),
    _metro("28", "Chartres", "02"), _metro("29", "Quimper", "02"),
    _metro("30", "Nîmes", "04"), _metro("31", "Toulouse", "05"),
    _metro("32", "Auch", "05"), _metro("33", "Bordeaux", "05"),
    _metro("34", "Montpellier", "04"), _metro("35", "Rennes", "02"),
    _metro("36", "Châteauroux", "02"), _metro("37", "Tours", "02"),
    _metro("38", "Grenoble", "04"), _metro("39", "Lons-le-Saunier", "03"),
    _metro("40", "Mont-de-Marsan", "05"), _metro("41", "Blois", "02"),
    _metro("42", "Saint-Étienne", "04"), _metro("43", "Le Puy-en-Velay", "04"),
    _metro("44", "Nantes", "02"), _metro("45", "Orléans", "02"),
    _metro("46", "Cahors", "05"), _metro("47", "Agen", "05"),
    _metro("48", "Mende", "04"), _metro("49", "Angers", "02"),
    _metro("50", "Saint-Lô", "02"), _metro("51", "Châlons-en-Champagne", "03"),
    _metro("52", "Chaumont", "03"), _metro("53", "Laval", "02"),
    _metro("54", "Nancy", "03"), _metro("55", "Bar-le-Duc", "03"),
    _metro("56", "Vannes", "02"), _metro("57", "Metz", "03"),
    _metro("58", "Nevers", "03"), _metro("59", "Lille", "03"),
    _metro("60", "Beauvais", "03"), _metro("61", "Alençon", "02"),
    _metro("62", "Arras", "03"), _metro("63", "Clermont-Ferrand", "04"),
    _metro("64", "Pau", "05"), _metro("65", "Tarbes", "05"),
    _metro("66", "Perpignan", "04"), _metro("67", "Strasbourg", "03"),
    _metro("68", "Colmar", "03"), Department("69", "Lyon", "69001", "04"),
    _metro("70", "Vesoul", "03"), _metro("71", "Mâcon", "03"),
    _metro("72", "Le Mans", "02"), _metro("73", "Chambéry", "04"),
    _metro("74", "Annecy", "04"), Department("75", "Paris", "75001", "01"),
    _metro("76", "Rouen", "02"), _metro("77", "Melun", "01"),
    _metro("78", "Versailles", "01"), _metro("79", "Niort", "05"),
    _metro("80", "Amiens", "03"), _metro("81", "Albi", "05"),
    _metro("82", "Montauban", "05"), _metro("83", "Toulon", "04"),
    _metro("84", "Avignon", "04"), _metro("85", "La Roche-sur-Yon", "02"),
    _metro("86", "Poitiers", "05"), _metro("87", "Limoges", "05"),
    _metro("88", "Épinal", "03"), _metro("89", "Auxerre", "03"),
    _metro("90", "Belfort", "03"), _metro("91", "Évry-Courcouronnes", "01"),
    _metro("92", "Nanterre", "01"), _metro("93", "Bobigny", "01"),
    _metro("94", "Créteil", "01"), _metro("95", "Cergy", "01"),
)

# Corsica: one department "20" until 1975, split into 2A and 2B from 1976.
# Postcodes stay 200xx/201xx (2A) and 202xx (2B).
CORSICA: tuple[Department, ...] = (
    Department("2A", "Ajaccio", "20000", "04"),
    Department("2A", "Porto-Vecchio", "20137", "04"),
    Department("2A", "Sartène", "20100", "04"),
    Department("2B", "Bastia", "20200", "04"),
    Department("2B", "Corte", "20250", "04"),
    Department("2B", "Calvi", "20260", "04"),
)

OVERSEAS: tuple[Department, ...] = (
    Department("971", "Pointe-à-Pitre", "97110", "0590"),
    Department("972", "Fort-de-France", "97200", "0596"),
    Department("973", "Cayenne", "97300", "0594"),
    Department("974", "Saint-Denis", "97400", "0262"),
    Department("975", "Saint-Pierre", "97500", "0508"),
    Department("976", "Mamoudzou", "97600", "0269"),
)

# INSEE country codes used in the NIR of people born abroad (99 + 3 digits).
BIRTH_COUNTRIES: tuple[str, ...] = (
    "109",  # Germany
    "127",  # Italy
    "131",  # Belgium
    "134",  # Spain
    "139",  # Portugal
    "140",  # Switzerland
    "341",  # Senegal
    "350",  # Morocco
    "351",  # Tunisia
    "352",  # Algeria
)

FIRST_NAMES_MALE: tuple[str, ...] = (
    "Jean", "Pierre", "Michel", "André", "Philippe", "Alain", "Bernard", "Jacques",
    "Daniel", "Christian", "Patrick", "Nicolas", "Frédéric", "Laurent", "Stéphane",
    "Julien", "Sébastien", "Thomas", "Antoine", "Mathieu", "Maxime", "Hugo", "Lucas",
    "Louis", "Gabriel", "Léo", "Raphaël", "Arthur", "Jules", "Adam", "Théo", "Noé",
    "Olivier", "François", "Yves", "Gérard", "Didier", "Hervé", "Loïc", "Mohamed",
    "Karim", "Rémi", "Baptiste", "Quentin", "Romain", "Clément", "Anthony", "Kévin",
)

FIRST_NAMES_FEMALE: tuple[str, ...] = (
    "Marie", "Nathalie", "Isabelle", "Sylvie", "Catherine", "Françoise", "Christine",
    "Monique", "Sandrine", "Valérie", "Véronique", "Martine", "Céline", "Julie",
    "Aurélie", "Émilie", "Camille", "Léa", "Manon", "Chloé", "Emma", "Jade", "Louise",
    "Alice", "Lina", "Rose", "Anna", "Inès", "Zoé", "Sarah", "Laura", "Pauline",
    "Hélène", "Brigitte", "Chantal", "Nicole", "Danielle", "Geneviève", "Agnès",
    "Élodie", "Mélanie", "Anaïs", "Fatima", "Nadia", "Océane", "Margaux", "Clémence",
)

LAST_NAMES: tuple[str, ...] = (
    "Martin", "Bernard", "Thomas", "Petit", "Robert", "Richard", "Durand", "Dubois",
    "Moreau", "Laurent", "Simon", "Michel", "Lefèvre", "Leroy", "Roux", "David",
    "Bertrand", "Morel", "Fournier", "Girard", "Bonnet", "Dupont", "Lambert", "Fontaine",
    "Rousseau", "Vincent", "Muller", "Lefebvre", "Faure", "André", "Mercier", "Blanc",
    "Guérin", "Boyer", "Garnier", "Chevalier", "François", "Legrand", "Gauthier",
    "Garcia", "Perrin", "Robin", "Clément", "Morin", "Nicolas", "Henry", "Roussel",
    "Mathieu", "Gautier", "Masson", "Marchand", "Duval", "Denis", "Dumont", "Marie",
    "Lemaire", "Noël", "Meyer", "Dufour", "Meunier", "Brun", "Blanchard", "Giraud",
    "Joly", "Rivière", "Lucas", "Brunet", "Gaillard", "Barbier", "Arnaud", "Martinez",
    "Gérard", "Roche", "Renard", "Schmitt", "Roy", "Leroux", "Colin", "Vidal", "Caron",
    "Picard", "Roger", "Fabre", "Aubert", "Lemoine", "Renaud", "Dumas", "Lacroix",
    "Olivier", "Philippe", "Bourgeois", "Pierre", "Benoît", "Rey", "Leclerc", "Payet",
    "Rolland", "Leclercq", "Guillaume", "Lecomte", "Lopez", "Jean", "Dupuy", "Guillot",
    "Hubert", "Berger", "Carpentier", "Sanchez", "Dupuis", "Moulin", "Louis", "Deschamps",
    "Huet", "Vasseur", "Perez", "Boucher", "Fleury", "Royer", "Klein", "Jacquet", "Adam",
    "Paris", "Poirier", "Marty", "Aubry", "Guyot", "Carré", "Charles", "Renault",
    "Charpentier", "Ménard", "Maillard", "Baron", "Bertin", "Bailly", "Hervé", "Schneider",
    "Fernandez", "Le Gall", "Collet", "Léger", "Bouvier", "Julien", "Prévost", "Millet",
    "Perrot", "Daniel", "Le Roux", "Cousin", "Germain", "Breton", "Besson", "Langlois",
    "Rémy", "Le Goff", "Pelletier", "Lévêque", "Perrier", "Leblanc", "Barré", "Lebrun",
    "Marchal", "Weber", "Mallet", "Hamon", "Boulanger", "Jacob", "Monnier", "Michaud",
    "Rodriguez", "Guichard", "Gillet", "Étienne", "Grondin", "Poulain", "Tessier",
    "Chevallier", "Collin", "Chauvin", "Da Silva", "Bouchet", "Gay", "Lemaître",
    "Bénard", "Maréchal", "Humbert", "Reynaud", "Antoine", "Hoarau", "Perret", "Barthélemy",
    "Cordier", "Pichon", "Lejeune", "Gilbert", "Lamy", "Delaunay", "Pasquier", "Carlier",
    "Laporte", "Santoni", "Pietri", "Casanova", "Albertini", "Leca", "Mariani",
)

STREET_KINDS: tuple[str, ...] = (
    "rue", "rue", "rue", "avenue", "boulevard", "place", "impasse", "allée", "chemin",
)

STREET_NAMES: tuple[str, ...] = (
    "de la République", "Victor Hugo", "Jean Jaurès", "de la Gare", "Pasteur",
    "du Général de Gaulle", "des Écoles", "de l'Église", "Gambetta", "Voltaire",
    "des Lilas", "du Moulin", "de la Paix", "Jules Ferry", "Émile Zola", "des Tilleuls",
    "du Château", "de la Liberté", "Carnot", "Georges Clemenceau", "des Acacias",
    "de Verdun", "du 8 Mai 1945", "Louis Pasteur", "Anatole France", "des Peupliers",
)
