"""Public holidays 2026–2035 of every calendar engine.domain.holidays knows, one row a day and calendar:
(ISO date, calendar, French name). Generated once from the rules in engine/domain/holidays.py and
reviewed; tests/unit/test_holidays.py proves rules and table agree. Vendored: no internet at run time.

Sources:
- national — Code du travail, article L3133-1 (the eleven fêtes légales): 1 January, Easter Monday,
  1 May, 8 May, Ascension, Whit Monday, 14 July, 15 August, 1 November, 11 November, 25 December.
  Article D223-9 of the Code de la consommation forbids commercial calls on these days.
- alsace_moselle — Code du travail, article L3134-13 (Bas-Rhin, Haut-Rhin, Moselle): Good Friday and
  26 December. Applied to every metropolitan number: a number does not tell where its holder lives.
- Abolition of slavery — loi n° 83-550 du 30 juin 1983, Code du travail article L3422-2, dates set by
  décret n° 83-1003 du 23 novembre 1983 as amended by décret n° 2012-553 du 23 avril 2012:
  Guadeloupe 27 May, Guyane 10 June, Martinique 22 May, La Réunion 20 December, Mayotte 27 April,
  Saint-Barthélemy 9 October, Saint-Martin 27 May in that decree, observed on 28 May since 2018 (loi
  n° 2017-256 du 28 février 2017; circular of 4 May 2018 of the Comité national pour la mémoire et
  l'histoire de l'esclavage) — the table says 28 May, and +590 numbers get Guadeloupe's 27 May anyway.
  The same dates are in Etalab's jours-feries-france (github.com/etalab/jours-feries-france, compute.py).
- Local days kept by custom or local texts, listed by Etalab's jours-feries-france and by
  python-holidays (github.com/vacanza/holidays, holidays/countries/france.py): Fête de Victor Schœlcher
  (21 July) in Guadeloupe and Martinique; Good Friday in Guadeloupe and Martinique; Mi-Carême
  (Easter − 24 days) in Guadeloupe. They are not in L3133-1; we keep them because a commercial call not
  placed on a local holiday breaks no rule, and one placed on it annoys.
- Easter Sunday: Gregorian computus (Meeus/Jones/Butcher); its 2026–2035 dates (5 Apr, 28 Mar, 16 Apr,
  1 Apr, 21 Apr, 13 Apr, 28 Mar, 17 Apr, 9 Apr, 25 Mar) are also written out in the unit test.

Not here: Mayotte's customary Muslim feasts (Miradji, Idi-el-Fitri, Idi-el-Kabir, Maoulid; former Code du
travail applicable à Mayotte, L222-1: "usages") whose dates depend on the lunar calendar as observed.
The trailing comment of each row is its day of the week.
"""

from typing import Final

HOLIDAYS: Final[tuple[tuple[str, str, str], ...]] = (
    ("2026-01-01", "national", "Jour de l'an"),  # Thu
    ("2026-03-12", "guadeloupe", "Mi-Carême"),  # Thu
    ("2026-04-03", "alsace_moselle", "Vendredi saint"),  # Fri
    ("2026-04-03", "guadeloupe", "Vendredi saint"),  # Fri
    ("2026-04-03", "martinique", "Vendredi saint"),  # Fri
    ("2026-04-06", "national", "Lundi de Pâques"),  # Mon
    ("2026-04-27", "mayotte", "Abolition de l'esclavage"),  # Mon
    ("2026-05-01", "national", "Fête du Travail"),  # Fri
    ("2026-05-08", "national", "Victoire 1945"),  # Fri
    ("2026-05-14", "national", "Ascension"),  # Thu
    ("2026-05-22", "martinique", "Abolition de l'esclavage"),  # Fri
    ("2026-05-25", "national", "Lundi de Pentecôte"),  # Mon
    ("2026-05-27", "guadeloupe", "Abolition de l'esclavage"),  # Wed
    ("2026-05-28", "saint_martin", "Abolition de l'esclavage"),  # Thu
    ("2026-06-10", "guyane", "Abolition de l'esclavage"),  # Wed
    ("2026-07-14", "national", "Fête nationale"),  # Tue
    ("2026-07-21", "guadeloupe", "Fête de Victor Schœlcher"),  # Tue
    ("2026-07-21", "martinique", "Fête de Victor Schœlcher"),  # Tue
    ("2026-08-15", "national", "Assomption"),  # Sat
    ("2026-10-09", "saint_barthelemy", "Abolition de l'esclavage"),  # Fri
    ("2026-11-01", "national", "Toussaint"),  # Sun
    ("2026-11-11", "national", "Armistice 1918"),  # Wed
    ("2026-12-20", "reunion", "Abolition de l'esclavage"),  # Sun
    ("2026-12-25", "national", "Noël"),  # Fri
    ("2026-12-26", "alsace_moselle", "Saint-Étienne"),  # Sat
    ("2027-01-01", "national", "Jour de l'an"),  # Fri
    ("2027-03-04", "guadeloupe", "Mi-Carême"),  # Thu
    ("2027-03-26", "alsace_moselle", "Vendredi saint"),  # Fri
    ("2027-03-26", "guadeloupe", "Vendredi saint"),  # Fri
    ("2027-03-26", "martinique", "Vendredi saint"),  # Fri
    ("2027-03-29", "national", "Lundi de Pâques"),  # Mon
    ("2027-04-27", "mayotte", "Abolition de l'esclavage"),  # Tue
    ("2027-05-01", "national", "Fête du Travail"),  # Sat
    ("2027-05-06", "national", "Ascension"),  # Thu
    ("2027-05-08", "national", "Victoire 1945"),  # Sat
    ("2027-05-17", "national", "Lundi de Pentecôte"),  # Mon
    ("2027-05-22", "martinique", "Abolition de l'esclavage"),  # Sat
    ("2027-05-27", "guadeloupe", "Abolition de l'esclavage"),  # Thu
    ("2027-05-28", "saint_martin", "Abolition de l'esclavage"),  # Fri
    ("2027-06-10", "guyane", "Abolition de l'esclavage"),  # Thu
    ("2027-07-14", "national", "Fête nationale"),  # Wed
    ("2027-07-21", "guadeloupe", "Fête de Victor Schœlcher"),  # Wed
    ("2027-07-21", "martinique", "Fête de Victor Schœlcher"),  # Wed
    ("2027-08-15", "national", "Assomption"),  # Sun
    ("2027-10-09", "saint_barthelemy", "Abolition de l'esclavage"),  # Sat
    ("2027-11-01", "national", "Toussaint"),  # Mon
    ("2027-11-11", "national", "Armistice 1918"),  # Thu
    ("2027-12-20", "reunion", "Abolition de l'esclavage"),  # Mon
    ("2027-12-25", "national", "Noël"),  # Sat
    ("2027-12-26", "alsace_moselle", "Saint-Étienne"),  # Sun
    ("2028-01-01", "national", "Jour de l'an"),  # Sat
    ("2028-03-23", "guadeloupe", "Mi-Carême"),  # Thu
    ("2028-04-14", "alsace_moselle", "Vendredi saint"),  # Fri
    ("2028-04-14", "guadeloupe", "Vendredi saint"),  # Fri
    ("2028-04-14", "martinique", "Vendredi saint"),  # Fri
    ("2028-04-17", "national", "Lundi de Pâques"),  # Mon
    ("2028-04-27", "mayotte", "Abolition de l'esclavage"),  # Thu
    ("2028-05-01", "national", "Fête du Travail"),  # Mon
    ("2028-05-08", "national", "Victoire 1945"),  # Mon
    ("2028-05-22", "martinique", "Abolition de l'esclavage"),  # Mon
    ("2028-05-25", "national", "Ascension"),  # Thu
    ("2028-05-27", "guadeloupe", "Abolition de l'esclavage"),  # Sat
    ("2028-05-28", "saint_martin", "Abolition de l'esclavage"),  # Sun
    ("2028-06-05", "national", "Lundi de Pentecôte"),  # Mon
    ("2028-06-10", "guyane", "Abolition de l'esclavage"),  # Sat
    ("2028-07-14", "national", "Fête nationale"),  # Fri
    ("2028-07-21", "guadeloupe", "Fête de Victor Schœlcher"),  # Fri
    ("2028-07-21", "martinique", "Fête de Victor Schœlcher"),  # Fri
    ("2028-08-15", "national", "Assomption"),  # Tue
    ("2028-10-09", "saint_barthelemy", "Abolition de l'esclavage"),  # Mon
    ("2028-11-01", "national", "Toussaint"),  # Wed
    ("2028-11-11", "national", "Armistice 1918"),  # Sat
    ("2028-12-20", "reunion", "Abolition de l'esclavage"),  # Wed
    ("2028-12-25", "national", "Noël"),  # Mon
    ("2028-12-26", "alsace_moselle", "Saint-Étienne"),  # Tue
    ("2029-01-01", "national", "Jour de l'an"),  # Mon
    ("2029-03-08", "guadeloupe", "Mi-Carême"),  # Thu
    ("2029-03-30", "alsace_moselle", "Vendredi saint"),  # Fri
    ("2029-03-30", "guadeloupe", "Vendredi saint"),  # Fri
    ("2029-03-30", "martinique", "Vendredi saint"),  # Fri
    ("2029-04-02", "national", "Lundi de Pâques"),  # Mon
    ("2029-04-27", "mayotte", "Abolition de l'esclavage"),  # Fri
    ("2029-05-01", "national", "Fête du Travail"),  # Tue
    ("2029-05-08", "national", "Victoire 1945"),  # Tue
    ("2029-05-10", "national", "Ascension"),  # Thu
    ("2029-05-21", "national", "Lundi de Pentecôte"),  # Mon
    ("2029-05-22", "martinique", "Abolition de l'esclavage"),  # Tue
    ("2029-05-27", "guadeloupe", "Abolition de l'esclavage"),  # Sun
    ("2029-05-28", "saint_martin", "Abolition de l'esclavage"),  # Mon
    ("2029-06-10", "guyane", "Abolition de l'esclavage"),  # Sun
    ("2029-07-14", "national", "Fête nationale"),  # Sat
    ("2029-07-21", "guadeloupe", "Fête de Victor Schœlcher"),  # Sat
    ("2029-07-21", "martinique", "Fête de Victor Schœlcher"),  # Sat
    ("2029-08-15", "national", "Assomption"),  # Wed
    ("2029-10-09", "saint_barthelemy", "Abolition de l'esclavage"),  # Tue
    ("2029-11-01", "national", "Toussaint"),  # Thu
    ("2029-11-11", "national", "Armistice 1918"),  # Sun
    ("2029-12-20", "reunion", "Abolition de l'esclavage"),  # Thu
    ("2029-12-25", "national", "Noël"),  # Tue
    ("2029-12-26", "alsace_moselle", "Saint-Étienne"),  # Wed
    ("2030-01-01", "national", "Jour de l'an"),  # Tue
    ("2030-03-28", "guadeloupe", "Mi-Carême"),  # Thu
    ("2030-04-19", "alsace_moselle", "Vendredi saint"),  # Fri
    ("2030-04-19", "guadeloupe", "Vendredi saint"),  # Fri
    ("2030-04-19", "martinique", "Vendredi saint"),  # Fri
    ("2030-04-22", "national", "Lundi de Pâques"),  # Mon
    ("2030-04-27", "mayotte", "Abolition de l'esclavage"),  # Sat
    ("2030-05-01", "national", "Fête du Travail"),  # Wed
    ("2030-05-08", "national", "Victoire 1945"),  # Wed
    ("2030-05-22", "martinique", "Abolition de l'esclavage"),  # Wed
    ("2030-05-27", "guadeloupe", "Abolition de l'esclavage"),  # Mon
    ("2030-05-28", "saint_martin", "Abolition de l'esclavage"),  # Tue
    ("2030-05-30", "national", "Ascension"),  # Thu
    ("2030-06-10", "guyane", "Abolition de l'esclavage"),  # Mon
    ("2030-06-10", "national", "Lundi de Pentecôte"),  # Mon
    ("2030-07-14", "national", "Fête nationale"),  # Sun
    ("2030-07-21", "guadeloupe", "Fête de Victor Schœlcher"),  # Sun
    ("2030-07-21", "martinique", "Fête de Victor Schœlcher"),  # Sun
    ("2030-08-15", "national", "Assomption"),  # Thu
    ("2030-10-09", "saint_barthelemy", "Abolition de l'esclavage"),  # Wed
    ("2030-11-01", "national", "Toussaint"),  # Fri
    ("2030-11-11", "national", "Armistice 1918"),  # Mon
    ("2030-12-20", "reunion", "Abolition de l'esclavage"),  # Fri
    ("2030-12-25", "national", "Noël"),  # Wed
    ("2030-12-26", "alsace_moselle", "Saint-Étienne"),  # Thu
    ("2031-01-01", "national", "Jour de l'an"),  # Wed
    ("2031-03-20", "guadeloupe", "Mi-Carême"),  # Thu
    ("2031-04-11", "alsace_moselle", "Vendredi saint"),  # Fri
    ("2031-04-11", "guadeloupe", "Vendredi saint"),  # Fri
    ("2031-04-11", "martinique", "Vendredi saint"),  # Fri
    ("2031-04-14", "national", "Lundi de Pâques"),  # Mon
    ("2031-04-27", "mayotte", "Abolition de l'esclavage"),  # Sun
    ("2031-05-01", "national", "Fête du Travail"),  # Thu
    ("2031-05-08", "national", "Victoire 1945"),  # Thu
    ("2031-05-22", "martinique", "Abolition de l'esclavage"),  # Thu
    ("2031-05-22", "national", "Ascension"),  # Thu
    ("2031-05-27", "guadeloupe", "Abolition de l'esclavage"),  # Tue
    ("2031-05-28", "saint_martin", "Abolition de l'esclavage"),  # Wed
    ("2031-06-02", "national", "Lundi de Pentecôte"),  # Mon
    ("2031-06-10", "guyane", "Abolition de l'esclavage"),  # Tue
    ("2031-07-14", "national", "Fête nationale"),  # Mon
    ("2031-07-21", "guadeloupe", "Fête de Victor Schœlcher"),  # Mon
    ("2031-07-21", "martinique", "Fête de Victor Schœlcher"),  # Mon
    ("2031-08-15", "national", "Assomption"),  # Fri
    ("2031-10-09", "saint_barthelemy", "Abolition de l'esclavage"),  # Thu
    ("2031-11-01", "national", "Toussaint"),  # Sat
    ("2031-11-11", "national", "Armistice 1918"),  # Tue
    ("2031-12-20", "reunion", "Abolition de l'esclavage"),  # Sat
    ("2031-12-25", "national", "Noël"),  # Thu
    ("2031-12-26", "alsace_moselle", "Saint-Étienne"),  # Fri
    ("2032-01-01", "national", "Jour de l'an"),  # Thu
    ("2032-03-04", "guadeloupe", "Mi-Carême"),  # Thu
    ("2032-03-26", "alsace_moselle", "Vendredi saint"),  # Fri
    ("2032-03-26", "guadeloupe", "Vendredi saint"),  # Fri
    ("2032-03-26", "martinique", "Vendredi saint"),  # Fri
    ("2032-03-29", "national", "Lundi de Pâques"),  # Mon
    ("2032-04-27", "mayotte", "Abolition de l'esclavage"),  # Tue
    ("2032-05-01", "national", "Fête du Travail"),  # Sat
    ("2032-05-06", "national", "Ascension"),  # Thu
    ("2032-05-08", "national", "Victoire 1945"),  # Sat
    ("2032-05-17", "national", "Lundi de Pentecôte"),  # Mon
    ("2032-05-22", "martinique", "Abolition de l'esclavage"),  # Sat
    ("2032-05-27", "guadeloupe", "Abolition de l'esclavage"),  # Thu
    ("2032-05-28", "saint_martin", "Abolition de l'esclavage"),  # Fri
    ("2032-06-10", "guyane", "Abolition de l'esclavage"),  # Thu
    ("2032-07-14", "national", "Fête nationale"),  # Wed
    ("2032-07-21", "guadeloupe", "Fête de Victor Schœlcher"),  # Wed
    ("2032-07-21", "martinique", "Fête de Victor Schœlcher"),  # Wed
    ("2032-08-15", "national", "Assomption"),  # Sun
    ("2032-10-09", "saint_barthelemy", "Abolition de l'esclavage"),  # Sat
    ("2032-11-01", "national", "Toussaint"),  # Mon
    ("2032-11-11", "national", "Armistice 1918"),  # Thu
    ("2032-12-20", "reunion", "Abolition de l'esclavage"),  # Mon
    ("2032-12-25", "national", "Noël"),  # Sat
    ("2032-12-26", "alsace_moselle", "Saint-Étienne"),  # Sun
    ("2033-01-01", "national", "Jour de l'an"),  # Sat
    ("2033-03-24", "guadeloupe", "Mi-Carême"),  # Thu
    ("2033-04-15", "alsace_moselle", "Vendredi saint"),  # Fri
    ("2033-04-15", "guadeloupe", "Vendredi saint"),  # Fri
    ("2033-04-15", "martinique", "Vendredi saint"),  # Fri
    ("2033-04-18", "national", "Lundi de Pâques"),  # Mon
    ("2033-04-27", "mayotte", "Abolition de l'esclavage"),  # Wed
    ("2033-05-01", "national", "Fête du Travail"),  # Sun
    ("2033-05-08", "national", "Victoire 1945"),  # Sun
    ("2033-05-22", "martinique", "Abolition de l'esclavage"),  # Sun
    ("2033-05-26", "national", "Ascension"),  # Thu
    ("2033-05-27", "guadeloupe", "Abolition de l'esclavage"),  # Fri
    ("2033-05-28", "saint_martin", "Abolition de l'esclavage"),  # Sat
    ("2033-06-06", "national", "Lundi de Pentecôte"),  # Mon
    ("2033-06-10", "guyane", "Abolition de l'esclavage"),  # Fri
    ("2033-07-14", "national", "Fête nationale"),  # Thu
    ("2033-07-21", "guadeloupe", "Fête de Victor Schœlcher"),  # Thu
    ("2033-07-21", "martinique", "Fête de Victor Schœlcher"),  # Thu
    ("2033-08-15", "national", "Assomption"),  # Mon
    ("2033-10-09", "saint_barthelemy", "Abolition de l'esclavage"),  # Sun
    ("2033-11-01", "national", "Toussaint"),  # Tue
    ("2033-11-11", "national", "Armistice 1918"),  # Fri
    ("2033-12-20", "reunion", "Abolition de l'esclavage"),  # Tue
    ("2033-12-25", "national", "Noël"),  # Sun
    ("2033-12-26", "alsace_moselle", "Saint-Étienne"),  # Mon
    ("2034-01-01", "national", "Jour de l'an"),  # Sun
    ("2034-03-16", "guadeloupe", "Mi-Carême"),  # Thu
    ("2034-04-07", "alsace_moselle", "Vendredi saint"),  # Fri
    ("2034-04-07", "guadeloupe", "Vendredi saint"),  # Fri
    ("2034-04-07", "martinique", "Vendredi saint"),  # Fri
    ("2034-04-10", "national", "Lundi de Pâques"),  # Mon
    ("2034-04-27", "mayotte", "Abolition de l'esclavage"),  # Thu
    ("2034-05-01", "national", "Fête du Travail"),  # Mon
    ("2034-05-08", "national", "Victoire 1945"),  # Mon
    ("2034-05-18", "national", "Ascension"),  # Thu
    ("2034-05-22", "martinique", "Abolition de l'esclavage"),  # Mon
    ("2034-05-27", "guadeloupe", "Abolition de l'esclavage"),  # Sat
    ("2034-05-28", "saint_martin", "Abolition de l'esclavage"),  # Sun
    ("2034-05-29", "national", "Lundi de Pentecôte"),  # Mon
    ("2034-06-10", "guyane", "Abolition de l'esclavage"),  # Sat
    ("2034-07-14", "national", "Fête nationale"),  # Fri
    ("2034-07-21", "guadeloupe", "Fête de Victor Schœlcher"),  # Fri
    ("2034-07-21", "martinique", "Fête de Victor Schœlcher"),  # Fri
    ("2034-08-15", "national", "Assomption"),  # Tue
    ("2034-10-09", "saint_barthelemy", "Abolition de l'esclavage"),  # Mon
    ("2034-11-01", "national", "Toussaint"),  # Wed
    ("2034-11-11", "national", "Armistice 1918"),  # Sat
    ("2034-12-20", "reunion", "Abolition de l'esclavage"),  # Wed
    ("2034-12-25", "national", "Noël"),  # Mon
    ("2034-12-26", "alsace_moselle", "Saint-Étienne"),  # Tue
    ("2035-01-01", "national", "Jour de l'an"),  # Mon
    ("2035-03-01", "guadeloupe", "Mi-Carême"),  # Thu
    ("2035-03-23", "alsace_moselle", "Vendredi saint"),  # Fri
    ("2035-03-23", "guadeloupe", "Vendredi saint"),  # Fri
    ("2035-03-23", "martinique", "Vendredi saint"),  # Fri
    ("2035-03-26", "national", "Lundi de Pâques"),  # Mon
    ("2035-04-27", "mayotte", "Abolition de l'esclavage"),  # Fri
    ("2035-05-01", "national", "Fête du Travail"),  # Tue
    ("2035-05-03", "national", "Ascension"),  # Thu
    ("2035-05-08", "national", "Victoire 1945"),  # Tue
    ("2035-05-14", "national", "Lundi de Pentecôte"),  # Mon
    ("2035-05-22", "martinique", "Abolition de l'esclavage"),  # Tue
    ("2035-05-27", "guadeloupe", "Abolition de l'esclavage"),  # Sun
    ("2035-05-28", "saint_martin", "Abolition de l'esclavage"),  # Mon
    ("2035-06-10", "guyane", "Abolition de l'esclavage"),  # Sun
    ("2035-07-14", "national", "Fête nationale"),  # Sat
    ("2035-07-21", "guadeloupe", "Fête de Victor Schœlcher"),  # Sat
    ("2035-07-21", "martinique", "Fête de Victor Schœlcher"),  # Sat
    ("2035-08-15", "national", "Assomption"),  # Wed
    ("2035-10-09", "saint_barthelemy", "Abolition de l'esclavage"),  # Tue
    ("2035-11-01", "national", "Toussaint"),  # Thu
    ("2035-11-11", "national", "Armistice 1918"),  # Sun
    ("2035-12-20", "reunion", "Abolition de l'esclavage"),  # Thu
    ("2035-12-25", "national", "Noël"),  # Tue
    ("2035-12-26", "alsace_moselle", "Saint-Étienne"),  # Wed
)
